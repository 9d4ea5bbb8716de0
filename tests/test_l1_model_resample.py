"""The resample op's L1 model (passes/l1_sim.py `_resample_steps`, passes/cb_model.py) against real
ttnn 0.81.1 on mock devices: seeded shapes (bilinear resizes at non-integer scales and sliding
average pools, like the ASPP pooling at 1024x2048) run through the generated modules' resample()
(runtime/ttnn_op_probe.py); the expected circular-buffer bytes of each of its six programs are what
real ttnn allocated, and every tensor stays in DRAM (no L1 buffer)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from hardware.targets import get_target
from passes.l1_sim import Program, TensorState, _resample_steps
from passes.plan import Placement

TARGETS = ("blackhole-20", "wormhole-n150")
SEED = 20261129
DRAM = {"buffer": "DRAM", "layout": "INTERLEAVED", "grid": None, "num_cores": None, "shard_shape": None}
PROGRAMS = ("Permute", "Tilize", "Matmul", "Matmul", "Untilize", "Permute")  # device operations, by prefix


def _specs() -> list[dict]:
    rnd = random.Random(SEED)
    shapes = [(1, 33, 65, 256, 64, 128), (1, 64, 128, 2048, 33, 65), (1, 17, 33, 256, 32, 64)]
    while len(shapes) < 16:
        n, c = rnd.choice((1, 1, 2)), rnd.choice((19, 32, 64, 256, 512))
        h, w = rnd.randint(2, 80), rnd.randint(2, 160)
        oh, ow = rnd.randint(2, 160), rnd.randint(2, 260)
        if n * c * max(h, oh) * max(w, ow) < 4e7:
            shapes.append((n, h, w, c, oh, ow))
    return [
        {
            "op": "resample",
            "inputs": [{"shape": [1, 1, n * h * w, c], "dtype": "bfloat16", "layout": "ROW_MAJOR", "mem": DRAM}],
            "args": {"nhwc": [n, h, w, c], "out_hw": [oh, ow], "memory": DRAM},
        }
        for n, h, w, c, oh, ow in shapes
    ]


@pytest.fixture(scope="module", params=TARGETS)
def measured(request, tmp_path_factory):
    from runtime.ttnn_mock import binutils_missing, run_child

    try:
        import ttnn  # noqa: F401
    except ImportError:
        pytest.skip("the real ttnn is not installed")
    if binutils_missing():
        pytest.skip(binutils_missing())
    target = get_target(request.param)
    work = tmp_path_factory.mktemp(target.name)
    (work / "in.json").write_text(json.dumps(_specs()))
    proc = run_child(
        target,
        ["-m", "runtime.ttnn_op_probe", "specs", str(work / "in.json"), str(work / "out.json")],
        cwd=work,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target, json.loads(Path(work / "out.json").read_text())


class _Node:  # what _resample_steps reads of an IR node
    def __init__(self, out_shape):
        self.out = type("Out", (), {"shape": out_shape})


def test_real_ttnn_runs_every_resample(measured):
    _, results = measured
    for r in results:
        assert not r["error"], (r["spec"], r["error"])
        n, h, w, c = r["spec"]["args"]["nhwc"]
        oh, ow = r["spec"]["args"]["out_hw"]
        assert r["output"]["shape"] == [1, 1, n * oh * ow, c]
        names = [p["name"] for p in r["programs"]]
        assert len(names) == len(PROGRAMS) and all(a.startswith(b) for a, b in zip(names, PROGRAMS, strict=True)), names


def test_model_cbs_equal_real_ttnn(measured):
    target, results = measured
    mismatches = []
    for r in results:
        n, h, w, c = r["spec"]["args"]["nhwc"]
        oh, ow = r["spec"]["args"]["out_hw"]
        dram = Placement("DRAM", "INTERLEAVED")
        x = TensorState(dram, n * h * w, c, "bfloat16", "ROW_MAJOR")
        out = TensorState(dram, n * oh * ow, c, "bfloat16", "ROW_MAJOR")
        steps = _resample_steps(_Node((n, c, oh, ow)), x, out, (n, c, h, w))
        model = [(s.cb, s.allocs) for s in steps if isinstance(s, Program)]
        real = [(p["cb"], p["l1"]) for p in r["programs"]]
        if [m[0] for m in model] != [q[0] for q in real] or any(m[1] for m in model) or any(q[1] for q in real):
            mismatches.append((r["spec"]["args"], "model", model, "real", real))
    assert not mismatches, "\n".join(map(str, mismatches))
