"""What real ttnn 0.81.1 allocates for one non-conv op, on a mock device (see runtime/ttnn_mock.py).

An op SPEC is plain JSON: {"op": ..., "inputs": [tensor, ...], "args": {...}} with a tensor
{"shape": [...], "dtype": "bfloat16", "layout": "TILE" | "ROW_MAJOR", "mem": placement} and a
placement as passes/plan.Placement's fields ({"buffer", "layout", "grid", "num_cores", "shard_shape"}).
`run_spec` makes the inputs, then runs the op exactly as templates/ops.j2 emits it inside a NORMAL
graph capture (real addresses; NO_DISPATCH rejects sharded pools on a mock device with "Global CB
size mismatch"), and reports the programs it launched: per program its device operation, its static
circular buffers that are not tensor-backed (per core, the most loaded core) and the op-owned L1 and
L1_SMALL buffers live while it ran (bytes per bank). ttnn's error, if it rejects the op, is kept.

(runtime/ttnn_trace.py reads the traces.) The committed programs' ops are measured as they run, by
runtime/ttnn_mock.py's NO_DISPATCH check (tests/test_l1_model_programs.py).

Child side only: `python -m runtime.ttnn_op_probe specs IN.json OUT.json`, run through
runtime.ttnn_mock.run_child.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import ttnn

from runtime import ttnn_trace

# Ops that only view or wrap data: not probed
_PASSTHROUGH = {
    "reshape",
    "deallocate",
    "from_torch",
    "to_torch",
    "to_device",
    "CoreCoord",
    "CoreRange",
    "CoreRangeSet",
    "ShardSpec",
    "MemoryConfig",
    "UnaryWithParam",
    "Conv2dConfig",
    "Conv2dSliceConfig",
    "WormholeComputeKernelConfig",
}


def cores(grid, count):
    """The first `count` cores of `grid`, row by row (what the generated modules' `cores()` builds)."""
    return ttnn.num_cores_to_corerangeset(count, ttnn.CoreCoord(*grid), True)


def memory_config(p: dict | None):
    if p is None:
        return None
    if p["layout"] == "INTERLEAVED":
        return ttnn.DRAM_MEMORY_CONFIG if p["buffer"] == "DRAM" else ttnn.L1_MEMORY_CONFIG
    spec = ttnn.ShardSpec(cores(p["grid"], p["num_cores"]), list(p["shard_shape"]), ttnn.ShardOrientation.ROW_MAJOR)
    return ttnn.MemoryConfig(getattr(ttnn.TensorMemoryLayout, p["layout"]), ttnn.BufferType.L1, spec)


def placement_of(mc) -> dict:
    buffer = "DRAM" if mc.buffer_type == ttnn.BufferType.DRAM else "L1"
    layout = mc.memory_layout.name
    if not mc.is_sharded():
        return {"buffer": buffer, "layout": "INTERLEAVED", "grid": None, "num_cores": None, "shard_shape": None}
    spec = mc.shard_spec
    box = spec.grid.bounding_box()
    grid = [box.end.x - box.start.x + 1, box.end.y - box.start.y + 1]
    return {
        "buffer": buffer,
        "layout": layout,
        "grid": grid,
        "num_cores": spec.grid.num_cores(),
        "shard_shape": list(spec.shape),
    }


def tensor_spec(t) -> dict:
    return {
        "shape": list(t.shape),
        "dtype": t.dtype.name.lower(),
        "layout": "TILE" if t.layout == ttnn.TILE_LAYOUT else "ROW_MAJOR",
        "mem": placement_of(t.memory_config()),
    }


def make_tensor(device, s: dict):
    dtype = getattr(ttnn, s["dtype"])
    layout = ttnn.TILE_LAYOUT if s["layout"] == "TILE" else ttnn.ROW_MAJOR_LAYOUT
    return ttnn.from_torch(
        torch.zeros(s["shape"]), dtype=dtype, layout=layout, device=device, memory_config=memory_config(s["mem"])
    )


def _error(exc: Exception) -> str:
    from runtime.ttnn_mock import condense

    return condense(str(exc))


def probe(device, fn, *args, mode=None, **kwargs) -> tuple[object, dict]:
    graph = ttnn.graph
    graph.begin_graph_capture(mode or graph.RunMode.NO_DISPATCH)
    result, error = None, ""
    try:
        result = fn(*args, **kwargs)
    except RuntimeError as exc:
        error = _error(exc)
    finally:
        trace = graph.end_graph_capture()
    return result, {"error": error, "programs": ttnn_trace.programs(ttnn_trace.events(trace))}


# ------------------------------------------------------------------ one spec, as the generated code calls it


def slice_config(slice_type: str, num_slices: int = 0):
    """ttnn's Conv2dSliceConfig for a plan's slice type (passes/plan.SliceType) and count; the probes'
    and tests' one spelling of it (the generated code's is templates/render.slice_config_expr)."""
    if slice_type == "L1_FULL":
        return ttnn.Conv2dSliceConfig(slice_type=ttnn.Conv2dL1Full)
    kind = {"DRAM_SLICE_HEIGHT": ttnn.Conv2dDRAMSliceHeight, "DRAM_SLICE_WIDTH": ttnn.Conv2dDRAMSliceWidth}[slice_type]
    return ttnn.Conv2dSliceConfig(slice_type=kind, num_slices=num_slices)


def call(device, spec: dict, xs: list):
    op, a = spec["op"], spec["args"]
    mc = memory_config(a.get("memory"))
    dtype = getattr(ttnn, a["dtype"]) if "dtype" in a else None
    if op in ("max_pool2d", "avg_pool2d"):
        kw = dict(
            batch_size=a["batch"],
            input_h=a["input_hw"][0],
            input_w=a["input_hw"][1],
            channels=a["channels"],
            kernel_size=tuple(a["kernel_size"]),
            stride=tuple(a["stride"]),
            padding=tuple(a["padding"]),
            ceil_mode=False,
            dtype=dtype,
            output_layout=ttnn.TILE_LAYOUT,
            memory_config=mc,
        )
        if op == "max_pool2d":
            kw["dilation"] = (1, 1)
        else:
            kw["count_include_pad"] = True
        if a.get("applied_shard_scheme"):
            kw["applied_shard_scheme"] = getattr(ttnn.TensorMemoryLayout, a["applied_shard_scheme"])
        if a.get("slices"):
            kw["dram_slice_config"] = slice_config(*a["slices"])
        return getattr(ttnn, op)(xs[0], **kw)
    if op == "upsample":
        return ttnn.upsample(ttnn.reshape(xs[0], tuple(a["nhwc"])), tuple(a["scale"]), mode=a["mode"], memory_config=mc)
    if op == "concat":
        return ttnn.concat(xs, dim=3, memory_config=mc)
    if op == "add":
        act = [ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)] if a.get("relu") else []
        return ttnn.add(xs[0], xs[1], activations=act, dtype=dtype, memory_config=mc)
    if op == "multiply":
        return ttnn.multiply(xs[0], xs[1], dtype=dtype, memory_config=mc)
    if op == "global_avg_pool2d":
        return ttnn.global_avg_pool2d(xs[0], dtype=dtype, memory_config=mc)
    if op == "to_memory_config":
        return ttnn.to_memory_config(xs[0], mc)
    if op == "to_layout":
        layout = ttnn.TILE_LAYOUT if a["layout"] == "TILE" else ttnn.ROW_MAJOR_LAYOUT
        kw = {"dtype": dtype} if dtype is not None else {}
        if mc is not None:
            kw["memory_config"] = mc
        return ttnn.to_layout(xs[0], layout, **kw)
    if op == "reallocate":
        return ttnn.reallocate(xs[0])
    if op == "resample":  # templates/module.py.j2 resample(), constants as the module makes them
        n, h, w, c = a["nhwc"]
        oh, ow = a["out_hw"]
        module = _resample_class()()
        module.params = {
            "r.rows": make_tensor(device, _dram_tile([n, c, oh, h])),
            "r.cols": make_tensor(device, _dram_tile([n, c, w, ow])),
        }
        return module.resample("r", xs[0], tuple(a["nhwc"]), tuple(a["out_hw"]), ttnn.MathFidelity.HiFi4, mc)
    raise ValueError(f"no probe for op {op!r}")


def _dram_tile(shape: list[int]) -> dict:
    return {
        "shape": shape,
        "dtype": "bfloat16",
        "layout": "TILE",
        "mem": {"buffer": "DRAM", "layout": "INTERLEAVED", "grid": None, "num_cores": None, "shard_shape": None},
    }


def _resample_class():
    """The generated modules' resample() method, rendered from its template, on a bare class."""
    from templates.render import resample_source

    namespace = {"ttnn": ttnn, "GRID": _GRID[0]}
    exec(resample_source(), namespace)
    return namespace["Resample"]


_GRID: list = []


def run_spec(device, spec: dict) -> dict:
    try:
        xs = [make_tensor(device, s) for s in spec["inputs"]]
    except RuntimeError as exc:
        return {"spec": spec, "error": "inputs: " + _error(exc), "programs": []}
    result, record = probe(device, call, device, spec, xs)
    if "Global CB size mismatch" in record["error"]:
        # NO_DISPATCH allocates nothing, which sharded pools and halos reject: capture with real addresses
        result, record = probe(device, call, device, spec, xs, mode=ttnn.graph.RunMode.NORMAL)
    out = {"spec": spec, **record}
    if result is not None:
        out["output"] = tensor_spec(result)
        ttnn.deallocate(result)
    for x in xs:
        if x.is_allocated():
            ttnn.deallocate(x)
    return out


def run_specs(specs: list[dict]) -> list[dict]:
    device = ttnn.open_device(device_id=0, l1_small_size=32768, trace_region_size=8388608)
    device.disable_and_clear_program_cache()  # a cached program allocates no circular buffers
    grid = device.compute_with_storage_grid_size()
    _GRID[:] = [(grid.x, grid.y)]
    try:
        return [run_spec(device, s) for s in specs]
    finally:
        ttnn.close_device(device)


def main(argv: list[str]) -> int:
    mode, src, dst = argv
    if mode == "specs":
        Path(dst).write_text(json.dumps(run_specs(json.loads(Path(src).read_text()))))
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
