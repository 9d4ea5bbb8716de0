"""Every emulated ttnn function takes the same arguments as the real 0.81.1 one: names, order,
positional/keyword-only kinds and which are required (read from the real bindings' signatures)."""

import inspect

import pytest

from hardware.targets import get_target
from runtime.api_check import real_overloads
from runtime.emulator import EMULATED, emulated_ttnn
from runtime.ttnn_host import import_ttnn

real = import_ttnn()
emu = emulated_ttnn(get_target("blackhole-20"))
KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "pos_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "pos_or_kw",
    inspect.Parameter.KEYWORD_ONLY: "kw_only",
    inspect.Parameter.VAR_POSITIONAL: "var_pos",
    inspect.Parameter.VAR_KEYWORD: "var_kw",
}
# Overloaded bindings the emulator serves with one Python function taking *args/**kwargs or a union.
MULTI = {"interleaved_to_sharded", "reshape"}
# Bindings Python cannot spell: a required argument after a defaulted one (`cq_id=None, mesh_event`).
UNSPELLABLE = {"wait_for_event"}


def emulated_params(fn):
    return [
        (p.name, KINDS[p.kind], p.default is inspect.Parameter.empty) for p in inspect.signature(fn).parameters.values()
    ]


@pytest.mark.parametrize("name", sorted(set(EMULATED) - MULTI))
def test_signature_matches_a_real_overload(name):
    overloads = real_overloads(real, getattr(real, name), name)
    assert overloads, f"no readable signature for ttnn.{name}"
    mine = emulated_params(getattr(emu, name))
    candidates = [[(p.name, p.kind, p.required) for p in ov.params] for ov in overloads]
    if name in UNSPELLABLE:  # names and kinds only
        mine, candidates = [m[:2] for m in mine], [[c[:2] for c in cand] for cand in candidates]
    if any(ov.relaxed_keywords is not None for ov in overloads):  # hand-written line: names and kinds only
        mine = [(n, k) for n, k, _ in mine]
        candidates = [[(n, "kw_only" if k == "pos_or_kw" else k) for n, k, _ in c] for c in candidates]
        mine = [(n, "kw_only" if k == "pos_or_kw" else k) for n, k in mine]
        assert any(all(item in mine for item in c) for c in candidates), (mine, candidates)
        return
    assert mine in candidates, f"ttnn.{name}: emulated {mine} vs real {candidates}"
