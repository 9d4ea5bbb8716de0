"""The non-conv ops' L1 model (passes/cb_model.py) and legality rules (passes/legality.py) against
real ttnn 0.81.1 on mock devices.

Seeded random configurations (shapes like the model's) run through runtime/ttnn_op_probe.py in one
child process per target; the expected numbers are what real ttnn allocated there, per program:
its static circular buffers that are not tensor-backed, the halo output and the op's output. A
configuration passes the legality functions exactly when real ttnn accepts it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from hardware.targets import get_target
from passes import cb_model
from passes.cb_model import cdiv, round_up
from passes.l1_sim import TensorState, buffer_bytes
from passes.legality import Operand, concat_illegal, upsample_illegal
from passes.plan import Placement

TARGETS = ("blackhole-20", "wormhole-n150")
SEED = 20261129
DRAM = {"buffer": "DRAM", "layout": "INTERLEAVED", "grid": None, "num_cores": None, "shard_shape": None}


def _cdiv32(a: int, b: int) -> int:
    return round_up(cdiv(a, b), 32)


def _height(grid, rows: int, cols: int, cores: int) -> dict:
    shard = _cdiv32(rows, cores)
    return {
        "buffer": "L1",
        "layout": "HEIGHT_SHARDED",
        "grid": list(grid),
        "num_cores": cdiv(rows, shard),
        "shard_shape": [shard, cols],
    }


def _block(grid, rows: int, cols: int) -> dict:
    return {
        "buffer": "L1",
        "layout": "BLOCK_SHARDED",
        "grid": list(grid),
        "num_cores": grid[0] * grid[1],
        "shard_shape": [_cdiv32(rows, grid[1]), _cdiv32(cols, grid[0])],
    }


def _tensor(rows: int, cols: int, mem: dict, dtype="bfloat16", layout="TILE") -> dict:
    return {"shape": [1, 1, rows, cols], "dtype": dtype, "layout": layout, "mem": mem}


def _specs(target) -> list[dict]:
    """At least 100 configurations over the op kinds and forms the planner emits."""
    rnd = random.Random(SEED)
    gx, gy = target.grid
    specs: list[dict] = []
    pools = 0
    while pools < 30:  # pools: sharded HEIGHT/BLOCK inputs and interleaved inputs sharded by the pool
        h, w = rnd.choice((8, 16, 32, 64, 128)), rnd.choice((16, 32, 64, 128, 256))
        c = rnd.choice((32, 64, 96, 128, 256, 512, 1024))
        k, s = rnd.choice(((3, 2), (3, 1), (2, 2), (5, 1)))
        rows = h * w
        form = rnd.choice(("height", "height", "block", "dram"))
        most = min(gx * gy, cdiv(rows, 32))
        cores = rnd.randint(min(most, cdiv(rows * c * 2, 100_000)), most)  # (its halo must fit in L1 too)
        if form == "height":
            mem = _height((gx, gy), rows, c, cores)
        elif form == "block":
            mem = _block((gx, gy), rows, c)
        else:
            mem = DRAM
        if form == "block" and (mem["shard_shape"][1] * gx != c or rows % 32):
            mem = _height((gx, gy), rows, c, cores)
        args: dict[str, Any] = {
            "batch": 1,
            "input_hw": [h, w],
            "channels": c,
            "kernel_size": [k, k],
            "stride": [s, s],
            "padding": [k // 2 if k != 2 else 0] * 2,
            "dtype": rnd.choice(("bfloat16", "bfloat8_b")),
            "memory": None,
        }
        if form == "dram":
            args["applied_shard_scheme"] = "HEIGHT_SHARDED"
        shard = mem["shard_shape"] or [_cdiv32(rows, gx * gy), c]
        c_core = shard[1]
        halo = cb_model.pool_halo_bytes(
            batch=1,
            input_hw=(h, w),
            kernel_size=(k, k),
            stride=(s, s),
            padding=tuple(args["padding"]),
            dilation=(1, 1),
            rows_per_core=shard[0],
            channels_per_core=c_core,
        )
        if 2 * shard[0] * c_core + halo > 600_000:  # keep clear of out-of-memory
            continue
        pools += 1
        specs.append({"op": rnd.choice(("max_pool2d", "avg_pool2d")), "inputs": [_tensor(rows, c, mem)], "args": args})
    for _ in range(24):  # upsample: bilinear on height shards, nearest sharded or interleaved
        h, w = rnd.choice(((1, 1), (8, 16), (16, 32), (32, 64), (64, 128)))
        c = rnd.choice((32, 64, 128, 256, 512))
        scale = rnd.choice(((2, 2), (4, 4))) if h > 1 else (32, 64)
        rows = h * w
        mode = rnd.choice(("bilinear", "bilinear", "nearest"))
        if mode == "bilinear" or rnd.random() < 0.5:
            # shards of whole image rows, or of any number of rows (upsample_bands' shards)
            cores = rnd.choice([n for n in range(1, gx * gy + 1) if h % n == 0 and w * h // n % 32 == 0] or [1])
            mem = _height((gx, gy), rows, c, cores)
            out_rows = rows * scale[0] * scale[1]
            out = _height((gx, gy), out_rows, c, mem["num_cores"]) if h > 1 else _height((gx, gy), out_rows, c, 16)
            if mode == "bilinear" and h > 1 and rnd.random() < 0.5:  # as upsample_bands shards a band
                shard = cdiv(rows, gx * gy)
                mem = {**mem, "num_cores": cdiv(rows, shard), "shard_shape": [shard, c]}
                out = {**out, "num_cores": mem["num_cores"], "shard_shape": [cdiv(out_rows, mem["num_cores"]), c]}
            layout = "ROW_MAJOR"
        else:  # (a TILE input must be whole tiles wide in its [N, H, W, C] view)
            mem, out, layout = DRAM, DRAM, rnd.choice(("ROW_MAJOR", "TILE")) if w % 32 == 0 else "ROW_MAJOR"
        if out["shard_shape"] and out["shard_shape"][0] * c * 2 > 1_000_000:  # keep clear of out-of-memory
            continue
        specs.append(
            {
                "op": "upsample",
                "inputs": [_tensor(rows, c, mem, layout=layout)],
                "args": {"nhwc": [1, h, w, c], "scale": list(scale), "mode": mode, "memory": out},
            }
        )
    for _ in range(25):  # concat along channels, legal and not
        chans = [rnd.choice((32, 64, 128, 256, 512)) for _ in range(rnd.choice((2, 2, 3, 5)))]
        rows = rnd.choice((256, 2048, 8192) if len(chans) == 2 else (256, 2048))  # (inputs and output fit in L1)
        sharded = rnd.random() < 0.6
        layout = rnd.choice(("TILE", "ROW_MAJOR"))
        cores = min(gx * gy, rows // 128)
        ins = []
        for c in chans:
            mem = _height((gx, gy), rows, c, cores) if sharded else DRAM
            dtype, lay = "bfloat16", layout
            if rnd.random() < 0.1:
                lay = "ROW_MAJOR" if layout == "TILE" else "TILE"
            elif rnd.random() < 0.1 and lay == "TILE" and len(chans) == 2:
                dtype = "bfloat8_b"  # (interleaved concats of 3+ inputs accepted mixed dtypes: see legality)
            elif rnd.random() < 0.05:
                mem = DRAM
            ins.append(_tensor(rows, c, mem, dtype=dtype, layout=lay))
        out = _height((gx, gy), rows, sum(chans), cores) if sharded else DRAM
        specs.append({"op": "concat", "inputs": ins, "args": {"memory": out}})
    for _ in range(25):  # add / multiply: sharded alike, mixed, interleaved, broadcast rows
        rows, c = rnd.choice((2048, 4096)), rnd.choice((64, 256, 512))  # (three operands fit in L1)
        mems = [_height((gx, gy), rows, c, gx * gy), _block((gx, gy), rows, c) if c // gx % 32 == 0 else DRAM, DRAM]
        a, b, out = (rnd.choice(mems) for _ in range(3))
        dts = [rnd.choice(("bfloat16", "bfloat8_b")) for _ in range(3)]
        op, b_rows = rnd.choice((("add", rows), ("add", rows), ("multiply", 1)))
        if b_rows == 1:
            b = DRAM
        specs.append(
            {
                "op": op,
                "inputs": [_tensor(rows, c, a, dts[0]), _tensor(b_rows, c, b, dts[1])],
                "args": {"relu": op == "add", "dtype": dts[2], "memory": out},
            }
        )
    for _ in range(15):  # to_layout, sharded and interleaved
        rows, c = rnd.choice((2048, 8192)), rnd.choice((64, 128, 256))
        to = rnd.choice(("ROW_MAJOR", "TILE"))
        mem = rnd.choice((_height((gx, gy), rows, c, gx * gy), DRAM))
        src = "TILE" if to == "ROW_MAJOR" else "ROW_MAJOR"
        specs.append(
            {
                "op": "to_layout",
                "inputs": [_tensor(rows, c, mem, layout=src)],
                "args": {"layout": to, "dtype": "bfloat16"},
            }
        )
    # global average pooling as the ASPP pooling branch emits it, and over few channel tiles (see reduce_programs)
    for rows, c in ((512, 2048), (2048, 2048), (512, 256), (2048, 256), (8192, 32), (2048, 512)):
        specs.append(
            {
                "op": "global_avg_pool2d",
                "inputs": [_tensor(rows, c, DRAM)],
                "args": {"dtype": "bfloat16", "memory": {**DRAM, "buffer": "L1"}},
            }
        )
    for (h, w), c, k in (((64, 128), 64, 2), ((32, 256), 32, 4), ((128, 256), 128, 4)):  # DRAM-sliced pools
        specs.append(
            {
                "op": rnd.choice(("max_pool2d", "avg_pool2d")),
                "inputs": [_tensor(h * w, c, DRAM)],
                "args": {
                    "batch": 1,
                    "input_hw": [h, w],
                    "channels": c,
                    "kernel_size": [3, 3],
                    "stride": [2, 2],
                    "padding": [1, 1],
                    "dtype": "bfloat16",
                    "memory": DRAM,
                    "slices": ["DRAM_SLICE_WIDTH", k],
                },
            }
        )
    return specs


def _placement(m: dict) -> Placement:
    return Placement(
        m["buffer"],
        m["layout"],
        tuple(m["grid"]) if m["grid"] else None,
        m["num_cores"],
        tuple(m["shard_shape"]) if m["shard_shape"] else None,
    )


def _bytes(t: dict, target) -> int:
    return buffer_bytes(
        TensorState(_placement(t["mem"]), t["shape"][2], t["shape"][3], t["dtype"], t["layout"]), target
    )


def _expected(spec: dict, result: dict, target) -> dict[str, int]:
    """Model numbers by program name (and 'halo' / 'output' L1 bytes per bank)."""
    op, a, x = spec["op"], spec["args"], spec["inputs"][0]
    m = x["mem"]
    out = result["output"]
    if op in ("max_pool2d", "avg_pool2d") and a.get("slices"):  # each slice's programs alike: the first's
        parts = cb_model.pool_slices(
            batch=1,
            input_hw=tuple(a["input_hw"]),
            channels=a["channels"],
            kernel_size=tuple(a["kernel_size"]),
            stride=tuple(a["stride"]),
            padding=tuple(a["padding"]),
            dilation=(1, 1),
            slice_type=a["slices"][0],
            num_slices=a["slices"][1],
            num_cores=target.num_cores,
            input_dtype=x["dtype"],
            output_dtype=a["dtype"],
        )
        return {
            "PaddedSliceDeviceOperation": parts[0].slice_cb,
            "HaloDeviceOperation": parts[0].halo_cb,
            "Pool2D": parts[0].cb,
            "halo": parts[0].halo,
            "output": parts[-1].output,
        }
    if op in ("max_pool2d", "avg_pool2d"):
        kernel, c = tuple(a["kernel_size"]), a["channels"]
        cores_c = m["grid"][0] if m["layout"] == "BLOCK_SHARDED" else 1
        c_core = c // cores_c
        out_rows = out["mem"]["shard_shape"][0]
        return {
            "HaloDeviceOperation": cb_model.halo_cb_bytes(channels_per_core=c_core, tiled_input=True),
            "Pool2D": cb_model.pool2d_cb_bytes(channels_per_core=c_core, kernel_size=kernel, output_dtype=a["dtype"]),
            "halo": cb_model.pool_halo_bytes(
                batch=1,
                input_hw=tuple(a["input_hw"]),
                kernel_size=kernel,
                stride=tuple(a["stride"]),
                padding=tuple(a["padding"]),
                dilation=(1, 1),
                rows_per_core=out_rows,
                channels_per_core=c_core,
            ),
            "output": _bytes(out, target),
        }
    if op == "upsample":
        sharded = m["layout"] != "INTERLEAVED"
        c = x["shape"][3]
        want = {
            "UpsampleOperation": cb_model.upsample_cb_bytes(
                channels_per_core=c,
                mode=a["mode"],
                layout=x["layout"],
                sharded=sharded,
                rows=x["shape"][2],
                num_cores=target.num_cores,
            ),
            "output": _bytes(out, target),
        }
        if a["mode"] == "bilinear":
            n, h, w, _ = a["nhwc"]
            want["HaloDeviceOperation"] = cb_model.halo_cb_bytes(channels_per_core=c, tiled_input=False)
            want["halo"] = cb_model.bilinear_halo_bytes(
                batch=n, input_hw=(h, w), scale=tuple(a["scale"]), num_cores=m["num_cores"], channels_per_core=c
            )
        return want
    if op == "concat":
        return {
            "ConcatDeviceOperation": cb_model.concat_cb_bytes(
                input_channels=[t["shape"][3] for t in spec["inputs"]],
                layout=x["layout"],
                sharded=m["layout"] != "INTERLEAVED",
                dtype=x["dtype"],
            ),
            "output": _bytes(out, target),
        }
    if op in ("add", "multiply"):
        y = spec["inputs"][1]
        o = a["memory"]
        alike = (
            x["mem"] == y["mem"]
            and m["layout"] != "INTERLEAVED"
            and o["layout"] != "INTERLEAVED"
            and o["num_cores"] == m["num_cores"]
        )
        return {
            "BinaryNgDeviceOperation": cb_model.eltwise_cb_bytes(
                dtypes=(x["dtype"], y["dtype"], a["dtype"]),
                sharded_alike=alike,
                broadcast=y["shape"][2] != x["shape"][2],
            ),
            "output": _bytes(out, target),
        }
    if op == "to_layout":
        name = (
            "TilizeDeviceOperation"
            if a["layout"] == "TILE"
            else ("UntilizeDeviceOperation" if m["layout"] != "INTERLEAVED" else "UntilizeCodegenDeviceOperation")
        )
        return {
            name: cb_model.layout_cb_bytes(
                channels=x["shape"][3],
                to=a["layout"],
                sharded=m["layout"] != "INTERLEAVED",
                in_dtype=x["dtype"],
                out_dtype=a["dtype"],
            ),
            "output": _bytes(out, target),
        }
    if op == "global_avg_pool2d":
        reduce = cb_model.reduce_programs(
            rows=x["shape"][2],
            channels=x["shape"][3],
            num_cores=target.num_cores,
            in_dtype=x["dtype"],
            out_dtype=x["dtype"],
        )
        return {
            "CopyDeviceOperation": 2 * cb_model.TILE_BYTES[x["dtype"]],
            "ReduceDeviceOperation": reduce[0][1],
            "output": _bytes(out, target),
        }
    raise AssertionError(op)


def _illegal(spec: dict) -> str | None:
    if spec["op"] == "upsample":
        out = spec["args"]["memory"]
        return upsample_illegal(
            mode=spec["args"]["mode"],
            input_cores=spec["inputs"][0]["mem"]["num_cores"],
            output_cores=out["num_cores"] if out else None,
        )
    if spec["op"] != "concat":
        return None
    return concat_illegal(
        [Operand(t["layout"], t["dtype"], t["mem"]["layout"] != "INTERLEAVED") for t in spec["inputs"]]
    )


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
    specs = _specs(target)
    (work / "in.json").write_text(json.dumps(specs))
    proc = run_child(
        target,
        ["-m", "runtime.ttnn_op_probe", "specs", str(work / "in.json"), str(work / "out.json")],
        cwd=work,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target, json.loads(Path(work / "out.json").read_text())


def test_at_least_100_configs_per_target(measured):
    _, results = measured
    assert len(results) >= 100


def test_legality_functions_agree_with_real_ttnn(measured):
    _, results = measured
    for r in results:
        reason = _illegal(r["spec"])
        if reason is None:
            assert not r["error"], (r["spec"], r["error"])
        else:
            assert reason in r["error"], (r["spec"], r["error"])


def test_model_numbers_equal_real_ttnn(measured):
    target, results = measured
    mismatches = []
    for r in results:
        if r["error"]:
            continue
        spec = r["spec"]
        want = _expected(spec, r, target)
        got = {p["name"]: p["cb"] for p in reversed(r["programs"])}  # a name's first program wins
        halo = [p["l1"][-1] for p in r["programs"] if p["name"] == "HaloDeviceOperation"]
        if halo:
            got["halo"] = halo[0]
        last = r["programs"][-1]["l1"] if r["programs"] else []
        got["output"] = want["output"] if want["output"] == 0 else (last[-1] if last else 0)
        for key, value in want.items():
            if got.get(key) != value:
                mismatches.append((spec["op"], key, "model", value, "real", got.get(key), json.dumps(spec)[:300]))
    assert not mismatches, "\n".join(map(str, mismatches[:40])) + f"\n{len(mismatches)} mismatches"
