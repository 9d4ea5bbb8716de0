"""Host weights from a planned graph, and their disk cache."""

from __future__ import annotations

import os
import pickle
from typing import Any

import torch

from runtime.ttnn_host import import_ttnn
from runtime.weights import cache_key, host_weights, load_weights, to_ttnn
from tests.codegen_graphs import tiny_graph


def test_host_dtypes_follow_the_planned_weights_dtype() -> None:
    g = tiny_graph()
    w = host_weights(g)
    # bfloat8_b on the device: float32 host weights, converted once by the conv itself
    stem = w["backbone.stem.conv1.weight"]
    assert (stem.dtype, stem.layout, stem.data.dtype) == ("float32", "ROW_MAJOR", torch.float32)
    assert torch.equal(stem.data, g.node("backbone.stem.conv1").params["weight"])
    # bfloat16 on the device: bfloat16 host weights
    pool_conv = w["sem_seg_head.decoder.res5.project_conv.pool_conv.weight"]
    assert (pool_conv.dtype, pool_conv.data.dtype) == ("bfloat16", torch.bfloat16)
    bias = w["backbone.stem.conv1.bias"]
    assert bias.data.shape == (1, 1, 1, 32)
    scale = w["normalize.scale"]
    assert (scale.dtype, scale.layout, tuple(scale.data.shape)) == ("bfloat16", "TILE", (1, 1, 1, 3))
    assert list(w) == sorted(w)


def test_cold_load_builds_and_caches_warm_load_reads_the_cache(tmp_path) -> None:
    calls = []

    def build():
        calls.append(1)
        return tiny_graph()

    key = cache_key("ckpt-digest", "module text")
    cold, cold_report = load_weights(tmp_path, key, build)
    assert not cold_report.warm and calls == [1]
    assert [p.name for p in tmp_path.iterdir()] == [f"weights-{key}.pt"]  # no temp file left behind

    def must_not_build():
        raise AssertionError("a warm load must not rebuild the graph")

    warm, warm_report = load_weights(tmp_path, key, must_not_build)
    assert warm_report.warm and warm_report.num_tensors == cold_report.num_tensors
    assert warm.keys() == cold.keys()
    for name in cold:
        assert torch.equal(warm[name].data, cold[name].data) and warm[name].dtype == cold[name].dtype


def test_cache_key_depends_on_checkpoint_and_plan() -> None:
    base = cache_key("a", "plan 1")
    assert base == cache_key("a", "plan 1")
    assert len({base, cache_key("b", "plan 1"), cache_key("a", "plan 2")}) == 3


def test_real_ttnn_host_tensors() -> None:
    ttnn = import_ttnn()
    tensors: dict[str, Any] = to_ttnn(host_weights(tiny_graph()), ttnn)
    stem = tensors["backbone.stem.conv1.weight"]
    assert (stem.dtype, stem.layout) == (ttnn.float32, ttnn.ROW_MAJOR_LAYOUT)
    assert tuple(stem.shape) == (32, 3, 3, 3)
    scale = tensors["normalize.scale"]
    assert (scale.dtype, scale.layout) == (ttnn.bfloat16, ttnn.TILE_LAYOUT)


def test_a_damaged_or_foreign_cache_entry_is_rebuilt_not_trusted(tmp_path, capsys) -> None:
    key = cache_key("ckpt-digest", "module text")
    cold, _ = load_weights(tmp_path, key, tiny_graph)
    assert capsys.readouterr().err == ""  # a missing entry is no news
    path = tmp_path / f"weights-{key}.pt"
    good = path.read_bytes()
    foreign = tmp_path / "foreign.pt"
    torch.save({"x": (torch.zeros(1), "open_device", "TILE")}, foreign)  # not a dtype the runtime makes
    for damaged in (good[: len(good) // 2], b"", foreign.read_bytes(), pickle.dumps({"x": _Pwn(tmp_path / "pwned")})):
        path.write_bytes(damaged)
        weights, report = load_weights(tmp_path, key, tiny_graph)
        assert not report.warm and weights.keys() == cold.keys()
        assert path.read_bytes() == good  # replaced by a good entry
        assert capsys.readouterr().err == (
            f"weight cache entry {path} does not read back as host weights (damaged, or not ours): rebuilding it\n"
        )
    assert not (tmp_path / "pwned").exists()


class _Pwn:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_lofi_weights_are_rounded_to_what_srca_reads_and_scaled_by_the_plan():
    """A LoFi conv's host weights: nearest values (ties to even) of the 4-mantissa-bit grid LoFi's SrcA
    multiplies by, so the emulated matrix engine's truncation (runtime/emulator/fidelity.py) drops nothing;
    `weights_scale` multiplies them first."""
    import dataclasses

    import pytest

    from passes.dtype_policy import dtype_policy, unbias_truncation
    from runtime.emulator.fidelity import srca_parts
    from tests.pass_graphs import GraphBuilder

    b = GraphBuilder((1, 3, 16, 16))
    head = b.conv("sem_seg_head.head", b.conv("stem", "input", 8), 8)
    g = unbias_truncation(dtype_policy(b.graph({"sem_seg": b.conv("sem_seg_head.predictor", head, 4, k=1, padding=0)})))
    assert g.node("sem_seg_head.head").plan.weights_round_srca

    def prepared(weights, **plan):
        n = g.node("sem_seg_head.head")
        n = dataclasses.replace(
            n, params={**n.params, "weight": torch.tensor(weights)}, plan=dataclasses.replace(n.plan, **plan)
        )
        return host_weights(g.replace_nodes([n if m.name == n.name else m for m in g.nodes]))[f"{n.name}.weight"].data

    w = prepared([1.03125, 1.09375, -1.96875, 0.1], weights_scale=1.0)
    # 1 + 1/32 is a tie (to even: 1), 1 + 3/32 a tie up to 1 + 1/8, -(2 - 1/32) one up to -2; 0.1 = 1.6 * 2^-4
    assert torch.equal(srca_parts(w)[0], w)
    assert w.tolist() == pytest.approx([1.0, 1.125, -2.0, 0.1015625], rel=1e-7)
    assert prepared([1.0, 0.1], weights_scale=2.0, weights_round_srca=False).tolist() == pytest.approx([2.0, 0.2])
