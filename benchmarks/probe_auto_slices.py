"""Ask real ttnn 0.81.1 (mock device) how many DRAM slices it picks when the hand-written model leaves
the count to it, and which programs each such conv becomes.

Tenstorrent's hand-written Panoptic-DeepLab runs several convs with `slice_config=None` on a DRAM
input (ttnn then DRAM-slices by itself) or with `Conv2dDRAMSliceWidth, num_slices=0` (ttnn picks the
count). The count is decided at run time from the L1 that is free then (conv2d_utils.cpp,
determine_conv2d_slice_config: start at 1 slice, grow until the conv fits). Here each conv runs alone
on a freshly opened mock device (NORMAL graph capture: real allocator, nothing else live), so the
count is the one ttnn picks with all of L1 free: a lower bound of what it picked inside the forward.
Each program the call launched is listed; the slice count is the number of PaddedSlice programs.

Writes benchmarks/measured/auto_slices.json (sorted keys): per target, per layer, the conv's geometry
and config as asked, the programs and the count. The measured plans (benchmarks/measured/*.yaml)
quote these counts. Usage: .venv/bin/python benchmarks/probe_auto_slices.py   (about a minute)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "measured" / "auto_slices.json"
TARGETS = ("blackhole-20", "blackhole-p150")

# (layer, in_channels, out_channels, input (h, w), kernel, stride, padding, shard layout or None = ttnn's
# choice, act_block_h, slicing: "auto" (slice_config None) or "width" (DRAMSliceWidth, num_slices=0),
# input layout). Geometry of Panoptic-DeepLab at 512x1024; configs from
# ../shared/reference/handwritten-pdl-measured-history.md section 1.1.
CONVS = [
    ("backbone.stem.conv2", 64, 64, (256, 512), 3, 1, 1, None, 0, "width", "TILE"),
    ("backbone.stem.conv3", 64, 128, (256, 512), 3, 1, 1, None, 0, "width", "TILE"),
    ("backbone.res3.0.shortcut", 256, 512, (128, 256), 1, 2, 0, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("decoder.res5.project_conv.convs.0", 2048, 256, (32, 64), 1, 1, 0, None, 0, "auto", "TILE"),
    ("decoder.res5.project_conv.convs.4.1", 2048, 256, (1, 1), 1, 1, 0, None, 0, "auto", "TILE"),
    ("decoder.res5.project_conv.project", 1280, 256, (32, 64), 1, 1, 0, None, 0, "auto", "TILE"),
    ("decoder.res3.project_conv", 512, 64, (64, 128), 1, 1, 0, None, 0, "auto", "TILE"),
    ("decoder.res2.project_conv", 256, 32, (128, 256), 1, 1, 0, None, 0, "auto", "TILE"),
    ("sem_seg_head.decoder.res3.fuse_conv.0", 320, 256, (64, 128), 3, 1, 1, "HEIGHT_SHARDED", 0, "auto", "ROW_MAJOR"),
    ("sem_seg_head.decoder.res2.fuse_conv.0", 288, 256, (128, 256), 3, 1, 1, "HEIGHT_SHARDED", 0, "auto", "ROW_MAJOR"),
    ("ins_embed_head.decoder.res3.fuse_conv.0", 320, 128, (64, 128), 3, 1, 1, "HEIGHT_SHARDED", 0, "auto", "ROW_MAJOR"),
    (
        "ins_embed_head.decoder.res2.fuse_conv.0",
        160,
        128,
        (128, 256),
        3,
        1,
        1,
        "HEIGHT_SHARDED",
        0,
        "auto",
        "ROW_MAJOR",
    ),
    ("sem_seg_head.decoder.res3.fuse_conv.1", 256, 256, (64, 128), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("sem_seg_head.decoder.res2.fuse_conv.1", 256, 256, (128, 256), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("sem_seg_head.head.0", 256, 256, (128, 256), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("ins_embed_head.decoder.res3.fuse_conv.1", 128, 128, (64, 128), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("ins_embed_head.decoder.res2.fuse_conv.1", 128, 128, (128, 256), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("ins_embed_head.center_head.0", 128, 128, (128, 256), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
    ("ins_embed_head.center_head.1", 128, 32, (128, 256), 3, 1, 1, "HEIGHT_SHARDED", 0, "width", "TILE"),
]


def child(out_path: str) -> None:
    import torch
    import ttnn

    device = ttnn.open_device(device_id=0, l1_small_size=32768, trace_region_size=8388608)
    device.disable_and_clear_program_cache()
    results = {}
    try:
        for name, cin, cout, (h, w), k, s, p, layout, abh, slicing, in_layout in CONVS:
            x = ttnn.from_torch(
                torch.zeros(1, 1, h * w, cin),
                dtype=ttnn.bfloat8_b if in_layout == "TILE" else ttnn.bfloat16,
                layout=ttnn.TILE_LAYOUT if in_layout == "TILE" else ttnn.ROW_MAJOR_LAYOUT,
                device=device,
                memory_config=ttnn.DRAM_MEMORY_CONFIG,
            )
            kw = {}
            if layout is not None:
                kw["shard_layout"] = getattr(ttnn.TensorMemoryLayout, layout)
            config = ttnn.Conv2dConfig(
                weights_dtype=ttnn.bfloat8_b,
                act_block_h_override=abh,
                deallocate_activation=False,
                enable_act_double_buffer=True,
                reallocate_halo_output=True,
                config_tensors_in_dram=True,
                **kw,
            )
            compute = ttnn.init_device_compute_kernel_config(
                device.arch(), math_fidelity=ttnn.MathFidelity.LoFi, fp32_dest_acc_en=True, packer_l1_acc=False
            )
            slice_config = (
                None
                if slicing == "auto"
                else ttnn.Conv2dSliceConfig(slice_type=ttnn.Conv2dDRAMSliceWidth, num_slices=0)
            )
            weight = ttnn.from_torch(torch.zeros(cout, cin, k, k, dtype=torch.float32))
            bias = ttnn.from_torch(torch.zeros(1, 1, 1, cout, dtype=torch.float32))
            ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)
            error = ""
            try:
                y = ttnn.conv2d(
                    input_tensor=x,
                    weight_tensor=weight,
                    bias_tensor=bias,
                    device=device,
                    in_channels=cin,
                    out_channels=cout,
                    batch_size=1,
                    input_height=h,
                    input_width=w,
                    kernel_size=(k, k),
                    stride=(s, s),
                    padding=(p, p),
                    dilation=(1, 1),
                    groups=1,
                    dtype=ttnn.bfloat8_b,
                    conv_config=config,
                    compute_config=compute,
                    slice_config=slice_config,
                    memory_config=ttnn.DRAM_MEMORY_CONFIG,
                )
                ttnn.deallocate(y)
            except RuntimeError as exc:
                error = " ".join(str(exc).split())[:300]
            finally:
                trace = ttnn.graph.end_graph_capture()
            ttnn.deallocate(x)
            programs = [
                n["params"]["name"]
                for n in trace
                if n["node_type"] == "function_start"
                and n.get("params", {}).get("name", "").endswith("DeviceOperation")
            ]
            results[name] = {
                "geometry": {"in_channels": cin, "out_channels": cout, "input_hw": [h, w], "kernel": k, "stride": s},
                "asked": {"shard_layout": layout, "act_block_h": abh, "slicing": slicing, "input_layout": in_layout},
                "error": error,
                "programs": programs,
                "num_slices": programs.count("PaddedSliceDeviceOperation"),
                "matmul": any("Matmul" in p for p in programs),
            }
    finally:
        ttnn.close_device(device)
    Path(out_path).write_text(json.dumps(results))


def main() -> int:
    from hardware.targets import get_target
    from runtime.ttnn_mock import run_child

    targets: dict[str, dict] = {}
    for tname in TARGETS:
        with tempfile.TemporaryDirectory(prefix="pdl2ttnn-slices-") as tmp:
            out = Path(tmp) / "out.json"
            proc = run_child(get_target(tname), [str(Path(__file__).resolve()), "child", str(out)], Path(tmp), 900)
            if proc.returncode != 0 or not out.is_file():
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            targets[tname] = json.loads(out.read_text())
    data = {
        "how": "benchmarks/probe_auto_slices.py: each conv alone on a fresh mock device, real ttnn 0.81.1, NORMAL "
        "graph capture; num_slices = PaddedSlice programs (all L1 free: a lower bound of the forward's count)",
        "targets": targets,
    }
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    for tname, rows in targets.items():
        for name, r in rows.items():
            print(f"{tname:15s} {name:42s} slices {r['num_slices']:3d} matmul {r['matmul']!s:5s} {r['error'][:80]}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2])
    else:
        sys.exit(main())
