"""pdl-tune (compiler/tune.py): the search on a hand-made problem whose answers are checked by brute force,
and one real tuning of one block on the emulator, judged again by Detectron2 and real pdl-convert use."""

from __future__ import annotations

import itertools
import re

import pytest

from compiler.tune import LEVELS, TOP, Bounds, Tuner, main

UNITS = {"a": ["a.conv"], "b": ["b.conv"], "c": ["c.conv"]}
# modeled ms per level (LEVELS: policy, LoFi, HiFi2/bf8w, HiFi2/bf16w, HiFi4)
MS = {"a": [2.5, 1.0, 2.0, 3.0, 4.0], "b": [5.0, 2.0, 4.0, 6.0, 10.0], "c": [1.2, 1.0, 1.5, 2.0, 2.5]}
# 1 - PCC each unit adds to the semantic head at each level (top level: nothing)
LOSS = {
    "a": [0.0008, 0.004, 0.001, 0.0005, 0.0],
    "b": [0.002, 0.02, 0.004, 0.001, 0.0],
    "c": [0.0003, 0.001, 0.0005, 0.0002, 0.0],
}
PCC99 = Bounds("test", {"sem_seg": 0.99}, {}, {})


def truth(assignment, extra=0.0):
    """The 'measured' stats: 1 - PCC adds up over units (plus `extra` once two units are below the top)."""
    loss = 0.001 + sum(LOSS[u][lvl] for u, lvl in assignment.items())
    if sum(lvl < TOP for lvl in assignment.values()) >= 2:
        loss += extra
    return [{"sem_seg": {"pcc": 1.0 - loss, "gain": 1.0, "bias": 0.0}}]


def ms(assignment):
    return sum(MS[u][lvl] for u, lvl in assignment.items())


def feasible(assignment, extra=0.0):
    return not PCC99.broken(truth(assignment, extra)[0])


def run(extra=0.0):
    calls = []

    def measure(assignment):
        calls.append(dict(assignment))
        return truth(assignment, extra)

    return Tuner(UNITS, PCC99, MS, measure, log=lambda s: None).run(), calls


def test_the_search_ends_feasible_and_no_single_cheaper_step_is_still_feasible():
    (assignment, measured), calls = run()
    assert feasible(assignment) and measured == truth(assignment)
    assert ms(assignment) < ms(dict.fromkeys(UNITS, TOP))
    for u, lvl in assignment.items():
        for other in range(len(LEVELS)):
            if MS[u][other] < MS[u][lvl]:
                assert not feasible({**assignment, u: other}), (u, other)
    # baseline, each unit alone at each lower level, then one validation of the result
    assert len(calls) == 1 + len(UNITS) * TOP + 1
    best = min(
        (dict(zip(UNITS, levels, strict=True)) for levels in itertools.product(range(len(LEVELS)), repeat=3)),
        key=lambda a: ms(a) if feasible(a) else float("inf"),
    )
    assert ms(assignment) <= ms(best) + 1.0  # greedy: within one level step of the brute-force optimum


def test_a_prediction_the_measurement_refutes_is_backed_off_until_the_result_holds():
    extra = 0.004  # interactions the additive prediction does not see
    (assignment, measured), calls = run(extra)
    assert feasible(assignment, extra) and measured == truth(assignment, extra)
    assert len(calls) > 1 + len(UNITS) * TOP + 1  # at least one refuted validation


def test_an_infeasible_baseline_is_reported_and_nothing_is_lowered():
    def measure(assignment):
        return [{"sem_seg": {"pcc": 0.98, "gain": 1.0, "bias": 0.0}}]

    lines = []
    assignment, _ = Tuner(UNITS, PCC99, MS, measure, log=lines.append).run()
    assert assignment == dict.fromkeys(UNITS, TOP)
    assert lines and lines[0].startswith("infeasible") and "sem_seg PCC" in lines[0]


def test_pdl_tune_writes_overrides_pdl_convert_takes_and_caches_its_runs(checkpoint_path, tmp_path, capsys):
    """One block (the semantic head's own convs) tuned on the emulator to PCC >= 0.99 per head; the
    written file then plans through pdl-convert's overrides, and Detectron2 confirms the floor."""
    from converter.checkpoint import load_checkpoint
    from converter.model import build_model, load_config, with_crop_size
    from converter.reference import reference_outputs
    from converter.trace import trace_model
    from hardware.targets import get_target
    from passes.overrides import load_overrides
    from passes.pipeline import plan_graph
    from runtime.images import to_model_input
    from runtime.quality import pcc
    from runtime.scenes import street_scene

    out = tmp_path / "tuned.yaml"
    argv = ["--weights", str(checkpoint_path), "--bounds", "pcc99", "--units", "sem_seg_head.head"]
    argv += ["--tune-size", "128x256", "--input-size", "128x256", "--out", str(out), "--cache", str(tmp_path / "c")]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "bounds pcc99: kept" in first
    overrides = load_overrides(out)
    assert set(overrides.layers) == {"sem_seg_head.head.0", "sem_seg_head.head.1"}
    found = re.search(r"; (\d+) emulated forwards", first)
    assert found, first
    runs = int(found.group(1))
    assert runs >= 2 and len(list((tmp_path / "c").glob("*.json"))) == runs  # each forward cached once

    size = (128, 256)
    model = load_checkpoint(build_model(with_crop_size(load_config(), size)), checkpoint_path)
    planned = plan_graph(trace_model(model, "panoptic_deeplab", size), get_target("blackhole-20"), overrides)
    image = to_model_input(street_scene(size[1], size[0], seed=0))
    got = _emulate(planned, image)
    ref = reference_outputs(model, "panoptic_deeplab", image)
    assert min(pcc(got[h], ref[h]) for h in ref) >= 0.99


def _emulate(planned, image):
    import tempfile
    from pathlib import Path

    from converter.atomic import write_text
    from runtime.run import load_module, run_module
    from runtime.weights import host_weights
    from templates.render import render_module

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.py"
        write_text(path, render_module(planned, "blackhole-20"))
        return run_module(load_module(path), host_weights(planned), image, backend="emulator").outputs


@pytest.mark.parametrize("argv", [["--bounds", "tight"], ["--units", "backbone.res9"]])
def test_user_mistakes_are_one_line_exit_2(argv, capsys, checkpoint_path):
    assert main([*argv, "--weights", str(checkpoint_path), "--tune-size", "128x256", "--input-size", "128x256"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pdl-tune: error:")
