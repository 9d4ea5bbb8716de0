"""Would a channel-sliced conv fit where the whole one does not? Real ttnn 0.81.1's verdict, on a mock
device, for the pieces of one (default: the ASPP's 2048->256 3x3 dilation-18 conv at 64x128 on
blackhole-20, which no sharding or DRAM slicing of the whole conv fits).

A conv over Cin input channels run as k partial convs, one per group of Cin/k input channels
(out = sum_g conv(x[..., g], w[:, g]) + bias), rendered as:
    x_g = ttnn.slice(x, [0, 0, 0, g*Cin/k], [1, 1, N*H*W, (g+1)*Cin/k])   # DRAM -> DRAM
    y_g = ttnn.conv2d(x_g, w_g, bias only for g = 0, ..., memory_config=DRAM)  # w split at weight prep
    acc = ttnn.add(acc, y_g)                                              # DRAM, fp32 or bf16
Each piece runs inside a NORMAL graph capture (real addresses, ttnn's allocator and CB clash checks),
with the program cache on as on a device. Per (k, sharding, slicing): accepted or ttnn's error, and
the peak CB / L1 per core of the conv and the slice and add.

    python benchmarks/channel_slice_probe.py [--target blackhole-20] [--hw 64x128] [--cin 2048]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# (shard layout, slice type, slices, act_block_h): the whole conv's candidates and each piece's
CONFIGS = (
    ("HEIGHT_SHARDED", "L1_FULL", 0, 32),
    ("BLOCK_SHARDED", "L1_FULL", 0, 32),
    ("WIDTH_SHARDED", "L1_FULL", 0, 32),
    ("BLOCK_SHARDED", "DRAM_SLICE_WIDTH", 4, 32),
    ("BLOCK_SHARDED", "DRAM_SLICE_HEIGHT", 4, 32),
    ("WIDTH_SHARDED", "DRAM_SLICE_HEIGHT", 4, 32),
    ("WIDTH_SHARDED", "DRAM_SLICE_WIDTH", 4, 32),
    ("HEIGHT_SHARDED", "DRAM_SLICE_WIDTH", 8, 32),
    ("WIDTH_SHARDED", "DRAM_SLICE_HEIGHT", 8, 32),
    ("WIDTH_SHARDED", "DRAM_SLICE_HEIGHT", 16, 32),
    ("WIDTH_SHARDED", "DRAM_SLICE_HEIGHT", 32, 32),
    ("BLOCK_SHARDED", "DRAM_SLICE_HEIGHT", 16, 32),
)


def _child(args) -> list[dict]:
    import torch
    import ttnn

    from runtime.ttnn_mock import condense
    from runtime.ttnn_op_probe import cores, slice_config

    h, w = args.hw
    rows, cin, cout, d = h * w, args.cin, args.cout, args.dilation
    device = ttnn.open_device(device_id=0, l1_small_size=32768, trace_region_size=8388608)
    grid = device.compute_with_storage_grid_size()
    grid = (grid.x, grid.y)
    out: list[dict] = []

    def run(label: dict, fn, *args, **kwargs):
        ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)
        result, error = None, ""
        try:
            result = fn(*args, **kwargs)
        except RuntimeError as exc:
            error = condense(str(exc))
        finally:
            trace = ttnn.graph.end_graph_capture()
        usage = ttnn.graph.extract_resource_usage_per_core(trace)
        out.append(
            {**label, "error": error, "cb": int(usage.peak_cb), "l1": int(usage.peak_l1), "peak": int(usage.peak_total)}
        )
        print(json.dumps(out[-1]), flush=True)
        return result

    def dram(shape):
        return ttnn.from_torch(
            torch.zeros(shape),
            dtype=ttnn.bfloat16,
            layout=ttnn.TILE_LAYOUT,
            device=device,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
        )

    x = dram((1, 1, rows, cin))
    for k in args.groups:
        cg = cin // k
        for layout, slice_type, slices, abh in CONFIGS:
            label = {"k": k, "cin_per_conv": cg, "layout": layout, "slice": slice_type, "slices": slices}
            xg = x if k == 1 else run({**label, "piece": "slice"}, ttnn.slice, x, [0, 0, 0, 0], [1, 1, rows, cg])
            if xg is None:
                continue
            config = ttnn.Conv2dConfig(
                weights_dtype=ttnn.bfloat16,
                shard_layout=getattr(ttnn.TensorMemoryLayout, layout),
                act_block_h_override=abh,
                core_grid=cores(grid, grid[0] * grid[1]),
                override_sharding_config=True,
                config_tensors_in_dram=True,
            )
            sc = slice_config(slice_type, slices)
            weight = ttnn.from_torch(torch.zeros(cout, cg, 3, 3, dtype=torch.bfloat16))
            bias = ttnn.from_torch(torch.zeros(1, 1, 1, cout, dtype=torch.bfloat16))
            y = run(
                {**label, "piece": "conv2d"},
                ttnn.conv2d,
                input_tensor=xg,
                weight_tensor=weight,
                bias_tensor=bias,
                device=device,
                in_channels=cg,
                out_channels=cout,
                batch_size=1,
                input_height=h,
                input_width=w,
                kernel_size=(3, 3),
                stride=(1, 1),
                padding=(d, d),
                dilation=(d, d),
                groups=1,
                dtype=ttnn.bfloat16,
                conv_config=config,
                compute_config=ttnn.init_device_compute_kernel_config(
                    device.arch(), math_fidelity=ttnn.MathFidelity.HiFi2, fp32_dest_acc_en=True, packer_l1_acc=True
                ),
                slice_config=sc,
                memory_config=ttnn.DRAM_MEMORY_CONFIG,
            )
            if y is not None and k > 1:  # the accumulation of two partial sums, in DRAM
                acc = run({**label, "piece": "add"}, ttnn.add, y, y, memory_config=ttnn.DRAM_MEMORY_CONFIG)
                if acc is not None:
                    ttnn.deallocate(acc)
            if y is not None:
                ttnn.deallocate(y)
            if k > 1 and xg is not None:
                ttnn.deallocate(xg)
    ttnn.close_device(device)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="blackhole-20")
    parser.add_argument("--hw", default="64x128", type=lambda s: tuple(int(v) for v in s.split("x")))
    parser.add_argument("--cin", type=int, default=2048)
    parser.add_argument("--cout", type=int, default=256)
    parser.add_argument("--dilation", type=int, default=18)
    parser.add_argument("--groups", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4, 8])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    from runtime.ttnn_mock import run_probe

    argv = [str(Path(__file__).resolve()), "--child", "--target", args.target, "--hw", "x".join(map(str, args.hw))]
    argv += ["--cin", str(args.cin), "--cout", str(args.cout), "--dilation", str(args.dilation)]
    argv += ["--groups", ",".join(map(str, args.groups))]
    done = run_probe(args.target, argv)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    print(f"{'k':>2} {'Cin/k':>5} {'piece':7} {'sharding':15} {'slicing':18} {'CB':>8} {'L1':>8} {'peak':>8}  verdict")
    for r in rows:
        verdict = "accepted" if not r["error"] else r["error"].split("info: ")[-1][:150]
        print(
            f"{r['k']:>2} {r['cin_per_conv']:>5} {r['piece']:7} {r['layout']:15} {r['slice']}x{r['slices']:<4} "
            f"{r['cb']:>8} {r['l1']:>8} {r['peak']:>8}  {verdict}"
        )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
