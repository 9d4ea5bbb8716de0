"""How long real ttnn 0.81.1 takes on the host to build (and run on a mock device) one DRAM-sliced 1x1 conv,
per sharding, grid, stride and slicing: the probe behind passes/conv_sharding.slow_to_build.

Default: backbone.res3.0.shortcut at 512x1024 (256 -> 512 channels, 1x1, 128x256 input) on blackhole-20,
whose block sharding takes 4 of the 5 columns (8 channel tiles). Each call is a fresh program (its config
differs from every earlier one), so its time is ttnn's host work for that program: validation, slicing,
the reshard of each slice, runtime arguments (the kernels' JIT build is cached under the user cache).

    python benchmarks/probe_conv_build.py [--target blackhole-20] [--hw 128x256] [--cin 256] [--cout 512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# (shard layout, the grid's columns (0: all, -1: all but one), stride, slice type, slices, input scale):
# scale 2 halves the input's height and width (a stride-1 conv at full size runs out of L1)
CONFIGS = (
    ("HEIGHT_SHARDED", 0, 2, "DRAM_SLICE_HEIGHT", 2, 1),
    ("HEIGHT_SHARDED", 0, 2, "DRAM_SLICE_WIDTH", 2, 1),
    ("BLOCK_SHARDED", 0, 2, "DRAM_SLICE_HEIGHT", 2, 1),
    ("BLOCK_SHARDED", -1, 2, "DRAM_SLICE_HEIGHT", 2, 1),
    ("BLOCK_SHARDED", -1, 2, "DRAM_SLICE_HEIGHT", 4, 1),
    ("BLOCK_SHARDED", -1, 2, "DRAM_SLICE_WIDTH", 2, 1),
    ("BLOCK_SHARDED", -1, 2, "DRAM_SLICE_HEIGHT", 2, 2),
    ("BLOCK_SHARDED", -1, 1, "DRAM_SLICE_HEIGHT", 2, 2),
    ("BLOCK_SHARDED", -1, 1, "DRAM_SLICE_WIDTH", 2, 2),
)


def _child(args) -> None:
    import torch
    import ttnn

    from runtime.ttnn_mock import condense
    from runtime.ttnn_op_probe import cores, slice_config

    device = ttnn.open_device(device_id=0, l1_small_size=32768)
    g = device.compute_with_storage_grid_size()
    for layout, columns, stride, slice_type, slices, scale in CONFIGS:
        h, w = args.hw[0] // scale, args.hw[1] // scale
        grid = (g.x + columns if columns <= 0 else columns, g.y)
        x = ttnn.from_torch(
            torch.zeros(1, 1, h * w, args.cin),
            dtype=ttnn.bfloat16,
            layout=ttnn.TILE_LAYOUT,
            device=device,
            memory_config=ttnn.DRAM_MEMORY_CONFIG,
        )
        config = ttnn.Conv2dConfig(
            weights_dtype=ttnn.bfloat16,
            shard_layout=getattr(ttnn.TensorMemoryLayout, layout),
            output_layout=ttnn.TILE_LAYOUT,
            config_tensors_in_dram=True,
            core_grid=cores(grid, grid[0] * grid[1]),
            override_sharding_config=True,
        )
        start, error = time.perf_counter(), ""
        try:
            y = ttnn.conv2d(
                input_tensor=x,
                weight_tensor=ttnn.from_torch(torch.zeros(args.cout, args.cin, 1, 1), dtype=ttnn.bfloat16),
                device=device,
                in_channels=args.cin,
                out_channels=args.cout,
                batch_size=1,
                input_height=h,
                input_width=w,
                kernel_size=(1, 1),
                stride=(stride, stride),
                padding=(0, 0),
                dilation=(1, 1),
                groups=1,
                dtype=ttnn.bfloat16,
                conv_config=config,
                slice_config=slice_config(slice_type, slices),
                memory_config=ttnn.DRAM_MEMORY_CONFIG,
            )
            ttnn.deallocate(y)
        except RuntimeError as exc:
            error = condense(str(exc))
        seconds = time.perf_counter() - start
        ttnn.deallocate(x)
        row = {
            "layout": layout,
            "grid": grid,
            "input": f"{h}x{w}",
            "stride": stride,
            "slice": f"{slice_type} x{slices}",
        }
        print(json.dumps({**row, "seconds": round(seconds, 2), "error": error}), flush=True)
    ttnn.close_device(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="blackhole-20")
    parser.add_argument("--hw", default="128x256", type=lambda s: tuple(int(v) for v in s.split("x")))
    parser.add_argument("--cin", type=int, default=256)
    parser.add_argument("--cout", type=int, default=512)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    from runtime.ttnn_mock import run_probe

    argv = [str(Path(__file__).resolve()), "--child", "--hw", "x".join(map(str, args.hw))]
    done = run_probe(args.target, argv + ["--cin", str(args.cin), "--cout", str(args.cout)])
    print(f"{'sharding':15} {'grid':5} {'input':8} {'stride':>6} {'slicing':22} {'host s':>7}  verdict")
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            grid = "x".join(map(str, r["grid"]))
            verdict = "accepted" if not r["error"] else r["error"][:120]
            print(
                f"{r['layout']:15} {grid:5} {r['input']:8} {r['stride']:>6} {r['slice']:22} "
                f"{r['seconds']:>7.2f}  {verdict}"
            )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
