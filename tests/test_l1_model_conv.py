"""passes/cb_model.conv2d_l1 and conv2d_illegal against the real ttnn 0.81.1 on mock devices.

One child process per target runs every sample under NO_DISPATCH graph capture (tests/real_conv.py);
the expected numbers are what real ttnn allocated, never the model's.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import random
import tempfile
from pathlib import Path

import pytest

from hardware.targets import get_target
from passes import cb_model

ROOT = Path(__file__).resolve().parent.parent
GENERATED = [ROOT / "generated" / "panoptic_deeplab.py", ROOT / "generated" / "deeplab_v3_plus.py"]
SIZES = [8, 12, 16, 20, 25, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256]
CHANNELS = [3, 16, 32, 48, 64, 96, 128, 192, 256, 304, 512, 1024, 2048]
SAMPLES = {"blackhole-20": 100, "blackhole-p150": 40}  # random configs per target (plus generated rows)
SLICED = {"blackhole-20": 24, "blackhole-p150": 8}
CHILDREN = {
    "blackhole-20": 2,
    "blackhole-p150": 1,
}  # blackhole-20 also measures the generated rows  # of them DRAM-sliced (each slice is compared)
NUMBERS = ("cb", "halo", "output")
SLICE_NUMBERS = (
    "input",
    "slice_cb",
    "reshard",
    "halo",
    "halo_cb",
    "output",
    "cb",
    "untilize",
    "untilize_cb",
    "interleaved",
    "write_cb",
)


def sample(rng: random.Random, grid: tuple[int, int], sliced: bool) -> dict:
    """A random conv the planner could emit (act_block_w_div stays 1: ttnn crashes on most others)."""
    k = rng.choice([1, 1, 3, 3, 3])
    d = 1 if k == 1 else rng.choice([1, 1, 1, 2, 6, 12, 18])
    layout = rng.choice(["HEIGHT_SHARDED", "HEIGHT_SHARDED", "BLOCK_SHARDED", "BLOCK_SHARDED", "WIDTH_SHARDED"])
    if layout == "BLOCK_SHARDED":
        box = (rng.randint(1, grid[0]), rng.randint(1, grid[1]))
        cores = box[0] * box[1]
    else:
        box, cores = grid, rng.randint(1, grid[0] * grid[1])
    return dict(
        batch=1,
        input_hw=(rng.choice(SIZES), rng.choice(SIZES)),
        in_channels=rng.choice(CHANNELS),
        out_channels=rng.choice(CHANNELS[1:]),
        kernel_size=(k, k),
        stride=(s := rng.choice([1, 1, 1, 2]), s),
        padding=(d * (k // 2),) * 2,
        dilation=(d, d),
        groups=1,
        shard_layout=layout,
        grid=box,
        num_cores=cores,
        act_block_h=rng.choice([0, 0, 32, 64, 128, 256]),
        act_block_w_div=1,
        input_dtype=rng.choice(["bfloat16", "bfloat8_b"]),
        weights_dtype=rng.choice(["bfloat16", "bfloat8_b"]),
        output_dtype=rng.choice(["bfloat16", "bfloat8_b"]),
        enable_act_double_buffer=rng.random() < 0.4,
        enable_weights_double_buffer=rng.random() < 0.4,
        fp32_dest_acc=rng.random() < 0.4,
        output_layout="ROW_MAJOR" if rng.random() < 0.2 else "TILE",
        slice_type=rng.choice(["DRAM_SLICE_WIDTH", "DRAM_SLICE_HEIGHT"]) if sliced else "L1_FULL",
        num_slices=rng.choice([2, 3, 4, 8]) if sliced else 0,
        memory="DRAM" if sliced or rng.random() < 0.3 else "L1",
    )


def targeted() -> list[dict]:
    """DRAM-sliced convs the random draw rarely hits, on blackhole-20: WIDTH-sharded ROW_MAJOR results
    (copied to L1-interleaved before their untilize) and slices that read the whole input (a kernel
    reach as large as the input)."""
    base = dict(
        batch=1,
        input_hw=(32, 32),
        in_channels=96,
        out_channels=64,
        kernel_size=(3, 3),
        stride=(1, 1),
        padding=(1, 1),
        dilation=(1, 1),
        groups=1,
        shard_layout="WIDTH_SHARDED",
        grid=(5, 4),
        num_cores=20,
        act_block_h=0,
        act_block_w_div=1,
        input_dtype="bfloat16",
        weights_dtype="bfloat16",
        output_dtype="bfloat16",
        enable_act_double_buffer=False,
        enable_weights_double_buffer=False,
        fp32_dest_acc=False,
        output_layout="ROW_MAJOR",
        slice_type="DRAM_SLICE_HEIGHT",
        num_slices=2,
        memory="DRAM",
    )
    out = [
        dict(base, in_channels=c, input_hw=hw, num_slices=k, slice_type=t)
        for c, hw, k in ((96, (32, 32), 2), (256, (16, 24), 4), (64, (40, 16), 3))
        for t in ("DRAM_SLICE_HEIGHT", "DRAM_SLICE_WIDTH")
    ]
    block = dict(
        base,
        shard_layout="BLOCK_SHARDED",
        grid=(4, 3),
        num_cores=12,
        output_layout="TILE",
        padding=(6, 6),
        dilation=(6, 6),
        in_channels=32,
    )
    out += [
        dict(block, input_hw=hw, in_channels=c, out_channels=o)
        for hw, c, o in (((8, 8), 32, 64), ((8, 8), 192, 256), ((8, 40), 96, 64), ((8, 64), 32, 64), ((16, 8), 32, 64))
    ]
    out += [
        dict(block, shard_layout="HEIGHT_SHARDED", grid=(5, 4), num_cores=20),
        dict(
            block,
            shard_layout="HEIGHT_SHARDED",
            grid=(5, 4),
            num_cores=13,
            input_hw=(32, 12),
            in_channels=192,
            out_channels=48,
            stride=(2, 2),
            padding=(12, 12),
            dilation=(12, 12),
            num_slices=3,
        ),
    ]
    return out


def _args(config: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k != "memory"}


def _measure(target_name: str, configs: list[dict], generated: list[Path], part: tuple[int, int]) -> list[dict]:
    from runtime.ttnn_mock import run_child

    with tempfile.TemporaryDirectory(prefix="pdl2ttnn-conv-l1-") as work:
        request, result = Path(work) / "request.json", Path(work) / "result.json"
        request.write_text(json.dumps({"configs": configs, "generated": [str(p) for p in generated], "part": part}))
        proc = run_child(
            get_target(target_name),
            [str(ROOT / "tests" / "real_conv.py"), str(request), str(result)],
            cwd=Path(work),
            timeout=600,
        )
        assert proc.returncode == 0 and result.is_file(), proc.stderr[-3000:]
        return json.loads(result.read_text())


@pytest.fixture(scope="module")
def measured() -> dict[str, list[dict]]:
    pytest.importorskip("ttnn")
    from runtime.ttnn_mock import binutils_missing

    missing = binutils_missing()
    if missing:
        pytest.skip(missing)
    jobs = {}
    for i, (name, count) in enumerate(SAMPLES.items()):
        rng = random.Random(1000 + i)
        grid = get_target(name).grid
        # configs the model already calls illegal are not sent: some of them crash ttnn (SIGFPE)
        configs = [
            c
            for c in (sample(rng, grid, k < SLICED[name]) for k in range(count))
            if cb_model.conv2d_illegal(**_args(c)) is None
        ]
        if name == "blackhole-20":
            configs += targeted()
        jobs[name] = (configs, GENERATED if name == "blackhole-20" else [])
    # children side by side, CHILDREN[name] per target, each measuring its share of the distinct convs
    with concurrent.futures.ThreadPoolExecutor(sum(CHILDREN.values())) as pool:
        futures = {
            name: [pool.submit(_measure, name, *jobs[name], (k, CHILDREN[name])) for k in range(CHILDREN[name])]
            for name in jobs
        }
        out = {name: [r for f in fs for r in f.result()] for name, fs in futures.items()}
    assert sum(len(results) for results in out.values()) >= 150
    return out


def _compare(measured: dict[str, list[dict]], sliced: bool) -> tuple[collections.Counter, list[str]]:
    tally: collections.Counter = collections.Counter()
    misses: list[str] = []
    for name, results in measured.items():
        grid = get_target(name).grid
        for r in results:
            c = r["config"]
            if (c["slice_type"] != "L1_FULL") != sliced or r["error"]:
                continue
            category = f"{name} {'matmul' if r['matmul'] else 'conv'} {c['shard_layout']}"
            parts = cb_model.conv2d_slices(**_args(c), device_grid=grid)
            if sliced and not r["matmul"]:  # every slice's programs (ttnn runs matmul convs unsliced)
                category += f" {c['slice_type']} {c['output_layout']}"
                pairs = [
                    (f"slice {i} {key}", real[key], getattr(model, key))
                    for i, (real, model) in enumerate(zip(r["slices"], parts, strict=False))
                    for key in SLICE_NUMBERS
                ]
                pairs.append(("slices", len(r["slices"]), len(parts)))
            else:
                model = cb_model.conv2d_l1(**_args(c), device_grid=grid)
                pairs = [(key, r[key], getattr(model, key)) for key in NUMBERS]
            for key, real, model in pairs:
                tally[(category, key.split()[-1], real == model)] += 1
                if real != model:
                    misses.append(f"{category} {key}: real {real} model {model} {c}")
    return tally, misses


def _summary(tally: collections.Counter) -> str:
    keys = sorted({(cat, key) for cat, key, _ in tally})
    return "\n".join(
        f"{cat:45s} {key:6s} exact {tally[(cat, key, True)]:4d} off {tally[(cat, key, False)]:4d}" for cat, key in keys
    )


def test_conv_l1_equals_real_ttnn(measured):
    tally, misses = _compare(measured, sliced=False)
    assert sum(tally.values()) >= 3 * 120
    assert not misses, _summary(tally) + "\n" + "\n".join(misses[:20])


def test_dram_sliced_conv_l1_equals_real_ttnn(measured):
    tally, misses = _compare(measured, sliced=True)
    assert sum(tally.values()) >= 200
    assert not misses, _summary(tally) + "\n" + "\n".join(misses[:20])


def test_illegal_rules_only_fire_where_real_ttnn_rejects(measured):
    """Every config real ttnn accepted must pass conv2d_illegal (the generated rows included)."""
    wrong = [
        f"{r['config']}: {cb_model.conv2d_illegal(**_args(r['config']))}"
        for results in measured.values()
        for r in results
        if not r["error"] and cb_model.conv2d_illegal(**_args(r["config"]))
    ]
    assert not wrong, "\n".join(wrong[:10])
