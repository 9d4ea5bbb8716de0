"""Child process: run single ttnn.conv2d calls on a mock device under NO_DISPATCH graph capture and
report what real ttnn allocated per core (see tests/test_l1_model_conv.py for the parent side).

    python tests/real_conv.py REQUEST.json RESULT.json

REQUEST: {"configs": [conv, ...], "generated": [module path, ...], "part": [k, n]}; a conv is a dict of
passes/cb_model.conv2d_l1's keyword arguments plus "memory" ("L1" or "DRAM": the output's
memory_config). Every distinct CONV2D row of each generated module is measured too (the dict it
became is in the result); a conv given twice is measured once; with "part" only every n-th
distinct conv from the k-th. RESULT: [{"config": conv, "cb": ..., "halo": ..., "output": ..., "error": ...}, ...].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import ttnn

from runtime.ttnn_op_probe import cores, slice_config

DTYPES = {"bfloat16": ttnn.bfloat16, "bfloat8_b": ttnn.bfloat8_b, "float32": ttnn.float32}
CONV_OPS = ("Conv2dDeviceOperation",)  # the conv program; anything named *Matmul* is the 1x1 path


def _name(enum_value) -> str:
    return str(enum_value).split(".")[-1]


# ttnn's slice types by enum name; the generated code says L1Full explicitly (Conv2dL1FullSliceConfig)
_SLICE_TYPES = {"L1Full": "L1_FULL", "DRAMSliceWidth": "DRAM_SLICE_WIDTH", "DRAMSliceHeight": "DRAM_SLICE_HEIGHT"}


def from_generated(row: dict) -> dict:
    """A generated CONV2D row as conv2d_l1 keyword arguments (its input dtype taken as its output's)."""
    cfg, cc, sc = row["conv_config"], row["compute_config"], row["slice_config"]
    core_grid = cfg.core_grid
    box = core_grid.bounding_box()
    grid = (box.end.x + 1, box.end.y + 1)
    dtype = _name(row["dtype"]).lower()
    mem = row["memory_config"]
    return dict(
        batch=row["batch_size"],
        input_hw=(row["input_height"], row["input_width"]),
        in_channels=row["in_channels"],
        out_channels=row["out_channels"],
        kernel_size=tuple(row["kernel_size"]),
        stride=tuple(row["stride"]),
        padding=tuple(row["padding"]),
        dilation=tuple(row["dilation"]),
        groups=row["groups"],
        shard_layout=_name(cfg.shard_layout),
        grid=grid,
        num_cores=core_grid.num_cores(),
        act_block_h=cfg.act_block_h_override,
        act_block_w_div=cfg.act_block_w_div,
        input_dtype=dtype,
        weights_dtype=_name(cfg.weights_dtype).lower(),
        output_dtype=dtype,
        enable_act_double_buffer=cfg.enable_act_double_buffer,
        enable_weights_double_buffer=cfg.enable_weights_double_buffer,
        fp32_dest_acc=cc.fp32_dest_acc_en,
        output_layout="ROW_MAJOR" if cfg.output_layout == ttnn.ROW_MAJOR_LAYOUT else "TILE",
        slice_type=_SLICE_TYPES[_name(sc.slice_type) if sc is not None else "L1Full"],
        num_slices=0 if sc is None else sc.num_slices,
        memory="DRAM" if mem is not None and mem.buffer_type == ttnn.BufferType.DRAM else "L1",
    )


def summarize(trace) -> dict:
    """Per-core bytes: the largest conv/matmul program's static CBs + dataflow buffers that no tensor
    backs, the largest halo output, the largest L1 buffer a conv/matmul program allocated."""
    op, cb, halo, output = "", 0, 0, 0
    program, matmul = 0, False
    sizes: list[int] = []
    cb_sizes: list[int] = []
    for node in trace:
        kind, params = node["node_type"], node.get("params", {})
        if kind == "function_start" and params.get("name", "").endswith("DeviceOperation"):
            op, program, sizes = params["name"], 0, []
            matmul = matmul or "Matmul" in op
        conv_op = op in CONV_OPS or "Matmul" in op
        if kind in ("circular_buffer_allocate", "dataflow_buffer_allocate") and conv_op:
            if params.get("globally_allocated", params.get("borrows_memory")) == "0":
                program += int(params["size"])
                sizes.append(int(params["size"]))
                if program > cb:
                    cb, cb_sizes = program, list(sizes)
        elif kind == "buffer_allocate" and params.get("type") == "L1" and int(params["buffer_type"]) == 1:
            size = int(params["max_size_per_bank"])
            if op == "HaloDeviceOperation":
                halo = max(halo, size)
            elif conv_op:
                output = max(output, size)
    return {"cb": cb, "halo": halo, "output": output, "cb_sizes": cb_sizes, "matmul": matmul, "slices": slices(trace)}


SLICE_KEYS = {
    "PaddedSliceDeviceOperation": ("input", "slice_cb"),
    "HaloDeviceOperation": ("halo", "halo_cb"),
    "ReshardDeviceOperation": ("reshard", "reshard_cb"),
    "UntilizeDeviceOperation": ("untilize", "untilize_cb"),
    "ShardedToInterleavedDeviceOperation": ("interleaved", "interleaved_cb"),
    "UntilizeCodegenDeviceOperation": ("untilize", "untilize_cb"),
    "SliceWriteDeviceOperation": ("", "write_cb"),
}


def slices(trace) -> list[dict]:
    """A DRAM-sliced conv's programs per slice (each starts at a PaddedSlice): the first L1 buffer and
    the CBs no tensor backs of the padded slice, the reshard (its buffer is made before the program
    starts), the halo, the conv ("output", "cb"), the untilize of a ROW_MAJOR result (of a WIDTH-sharded
    one after its copy to L1-interleaved, "interleaved"), SliceWrite's CBs ("write_cb"); any other
    program's L1 under "other"."""
    out: list[dict[str, Any]] = []  # per slice: its programs' bytes, and the allocations no key names
    op, depth, op_depth = "", 0, 0
    for node in trace:
        kind, params = node["node_type"], node.get("params", {})
        if kind == "function_start":
            depth += 1
            name = params.get("name", "")
            if name.endswith("DeviceOperation"):
                op, op_depth = name, depth
                if name == "PaddedSliceDeviceOperation":
                    out.append(
                        {
                            "input": 0,
                            "slice_cb": 0,
                            "reshard": 0,
                            "reshard_cb": 0,
                            "halo": 0,
                            "halo_cb": 0,
                            "output": 0,
                            "cb": 0,
                            "untilize": 0,
                            "untilize_cb": 0,
                            "interleaved": 0,
                            "interleaved_cb": 0,
                            "write_cb": 0,
                            "other": [],
                        }
                    )
        elif kind == "function_end":
            if depth == op_depth:
                op, op_depth = "", 0
            depth -= 1
        if not out:
            continue
        s = out[-1]
        buffer_key, cb_key = SLICE_KEYS.get(op, ("output", "cb") if op in CONV_OPS or "Matmul" in op else ("", ""))
        if kind == "buffer_allocate" and params.get("type") == "L1" and int(params["buffer_type"]) == 1:
            size = int(params["max_size_per_bank"])
            if not op and not s["halo"]:  # the resharded copy, created before its program
                buffer_key = "reshard"
            if buffer_key and not s[buffer_key]:
                s[buffer_key] = size
            elif not buffer_key:
                s["other"].append([op, size])
        elif (
            kind in ("circular_buffer_allocate", "dataflow_buffer_allocate")
            and params.get("globally_allocated", params.get("borrows_memory")) == "0"
        ):
            if cb_key:
                s[cb_key] += int(params["size"])
            else:
                s["other"].append([op + " cb", int(params["size"])])
    return out


def measure(device, c: dict, dump: bool = False) -> dict:
    n, (h, w), cin, cout = c["batch"], c["input_hw"], c["in_channels"], c["out_channels"]
    kh, kw = c["kernel_size"]
    x = ttnn.from_torch(
        torch.zeros(1, 1, n * h * w, cin),
        dtype=DTYPES[c["input_dtype"]],
        layout=ttnn.TILE_LAYOUT,
        device=device,
        memory_config=ttnn.DRAM_MEMORY_CONFIG,
    )
    host = torch.bfloat16 if c["weights_dtype"] == "bfloat16" else torch.float32
    weight = ttnn.from_torch(torch.zeros(cout, cin // c["groups"], kh, kw, dtype=host))
    bias = ttnn.from_torch(torch.zeros(1, 1, 1, cout, dtype=host))
    config = ttnn.Conv2dConfig(
        weights_dtype=DTYPES[c["weights_dtype"]],
        shard_layout=getattr(ttnn.TensorMemoryLayout, c["shard_layout"]),
        act_block_h_override=c["act_block_h"],
        act_block_w_div=c["act_block_w_div"],
        enable_act_double_buffer=c["enable_act_double_buffer"],
        enable_weights_double_buffer=c["enable_weights_double_buffer"],
        output_layout=ttnn.ROW_MAJOR_LAYOUT if c["output_layout"] == "ROW_MAJOR" else ttnn.TILE_LAYOUT,
        core_grid=cores(c["grid"], c["num_cores"]),
        override_sharding_config=True,
    )
    compute = ttnn.WormholeComputeKernelConfig(
        math_fidelity=ttnn.MathFidelity.HiFi2, fp32_dest_acc_en=c["fp32_dest_acc"], packer_l1_acc=c["fp32_dest_acc"]
    )
    ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NO_DISPATCH)
    error = ""
    try:
        y = ttnn.conv2d(
            input_tensor=x,
            weight_tensor=weight,
            bias_tensor=bias,
            device=device,
            in_channels=cin,
            out_channels=cout,
            batch_size=n,
            input_height=h,
            input_width=w,
            kernel_size=(kh, kw),
            stride=tuple(c["stride"]),
            padding=tuple(c["padding"]),
            dilation=tuple(c["dilation"]),
            groups=c["groups"],
            dtype=DTYPES[c["output_dtype"]],
            conv_config=config,
            compute_config=compute,
            slice_config=slice_config(c["slice_type"], c["num_slices"]),
            memory_config=ttnn.DRAM_MEMORY_CONFIG if c["memory"] == "DRAM" else None,
        )
        ttnn.deallocate(y)
    except RuntimeError as exc:
        from runtime.ttnn_mock import condense

        error = condense(str(exc))
    finally:
        trace = ttnn.graph.end_graph_capture()
    ttnn.deallocate(x)
    out = {"config": c, "error": error, **summarize(trace)}
    if dump:
        out["events"] = [
            (
                node["node_type"],
                {
                    k: v
                    for k, v in node.get("params", {}).items()
                    if k
                    in (
                        "name",
                        "size",
                        "globally_allocated",
                        "max_size_per_bank",
                        "buffer_type",
                        "type",
                        "num_cores",
                        "core_range_set",
                    )
                },
            )
            for node in trace
            if node["node_type"]
            in (
                "function_start",
                "circular_buffer_allocate",
                "dataflow_buffer_allocate",
                "buffer_allocate",
                "circular_buffer_deallocate_all",
            )
        ]
    return out


def main(request_path: str, result_path: str) -> None:
    from runtime.run import load_module

    request = json.loads(Path(request_path).read_text())
    configs = list(request.get("configs", []))
    for path in request.get("generated", []):
        configs += [from_generated(row) for row in load_module(Path(path)).CONV2D.values()]
    configs = list({json.dumps(c, sort_keys=True): c for c in configs}.values())  # each distinct conv once
    part, parts = request.get("part", (0, 1))  # this child's share, when several measure side by side
    configs = configs[part::parts]
    device = ttnn.open_device(device_id=0, l1_small_size=32768, trace_region_size=8388608)
    try:
        results = []
        for c in configs:  # a crash (ttnn has SIGFPEs) shows its config last on stderr
            print(json.dumps(c), file=sys.stderr, flush=True)
            results.append(measure(device, c, request.get("dump", False)))
    finally:
        ttnn.close_device(device)
    Path(result_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
