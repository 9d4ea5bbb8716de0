"""Result quality of the generated TTNN model (issue #15): the metrics of runtime/quality.py on the
built-in street scenes of `pdl-demo :scenes`, for two weight seeds or the checkpoints given with
--weights (e.g. benchmarks/train_scenes.py's), at one precision, printed as a table, with the bounds
each row breaks. The TTNN side runs on the emulator exactly as pdl-demo runs it
(runtime/demo.py's runners and scenes); the reference is Detectron2's fp32 forward.

Usage: .venv/bin/python benchmarks/quality.py [--input-size 512x1024] [--precision accurate]
       [--seeds 0 12345 | --weights PKL ...] [--scenes 3] [--json FILE]
Slow: one emulated forward per scene and seed, about a minute each at 512x1024 on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from converter.checkpoint import load_checkpoint, write_random_checkpoint
from converter.model import DEFAULT_INPUT_SIZE, build_model, load_config, parse_size, with_crop_size
from hardware.targets import DEFAULT_TARGET
from passes.dtype_policy import PRECISIONS
from runtime.demo import SCENES_TOKEN, DemoArgs, load_inputs, pytorch_runner, ttnn_runner
from runtime.images import to_model_input
from runtime.postprocess import FusionParams
from runtime.quality import compare

SEEDS = (0, 12345)
VARIANT = "panoptic_deeplab"
HEADER = (
    f"{'weights':12s} {'scene':8s} {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'inst':>7s} {'ratio':>5s} "
    f"{'agree':>6s} {'conf.ag':>7s} {'PCC sem':>8s} {'PCC ctr':>8s} {'PCC off':>8s} "
    f"{'sem gain':>8s} {'ctr bias':>8s} {'off bias':>8s} {'ctr max':>7s} {'off max':>7s}  bounds broken"
)


def row(weights: str, scene: str, q) -> str:
    h = q.heads
    return (
        f"{weights[:12]:12s} {scene:8s} {q.pq:6.4f} {q.sq:6.4f} {q.rq:6.4f} "
        f"{q.instances:3d}/{q.reference_instances:<3d} {q.instance_ratio:5.2f} "
        f"{q.semantic_agreement:6.2%} {q.confident_agreement:7.2%} "
        f"{h['sem_seg'].pcc:8.5f} {h['center'].pcc:8.5f} {h['offset'].pcc:8.5f} "
        f"{h['sem_seg'].gain:8.4f} {h['center'].bias:+8.4f} {h['offset'].bias:+8.4f} "
        f"{h['center'].max_abs_error:7.3f} {h['offset'].max_abs_error:7.2f}  {len(q.violations())}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE, metavar="HxW")
    ap.add_argument("--precision", choices=list(PRECISIONS), default="accurate")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--weights", type=Path, action="append", default=[], help="checkpoint(s) instead of --seeds")
    ap.add_argument("--scenes", type=int, default=3, help="how many of the built-in scenes (seeds 0, 1, ...)")
    ap.add_argument("--json", type=Path, default=None, help="also write every metric to this file")
    args = ap.parse_args(argv)
    size = args.input_size
    cfg = load_config() if size == DEFAULT_INPUT_SIZE else with_crop_size(load_config(), size)
    fusion = FusionParams.from_config(cfg)
    scenes = load_inputs(SCENES_TOKEN)[0][: args.scenes]
    results = []
    print(f"{VARIANT}, {args.precision} precision, {size[0]}x{size[1]}, {DEFAULT_TARGET}, emulator vs Detectron2 fp32")
    print(HEADER)
    with tempfile.TemporaryDirectory(prefix="pdl-quality-") as tmp:
        checkpoints = {p.name: p for p in args.weights} or {
            f"seed {s}": write_random_checkpoint(load_config(), Path(tmp) / f"seed{s}.pkl", seed=s) for s in args.seeds
        }
        for label, weights in checkpoints.items():
            model = load_checkpoint(build_model(cfg), weights)
            demo_args = DemoArgs(
                inputs=SCENES_TOKEN,
                weights=weights,
                output_dir=Path(tmp),
                config=None,
                variant=VARIANT,
                input_size=size,
                pytorch_only=False,
                target=DEFAULT_TARGET,
                precision=args.precision,
                trace=False,
                two_queues=False,
                weight_cache=None,
            )
            reference = pytorch_runner(model, VARIANT)
            with ttnn_runner(model, weights, VARIANT, size, demo_args, Path(tmp)) as ttnn:
                for scene in scenes:
                    x = to_model_input(scene.load(size))
                    q = compare(ttnn(x), reference(x), fusion)
                    print(row(label, scene.name, q), flush=True)
                    for v in q.violations():
                        print(f"{'':15s}{v}")
                    results.append({"weights": label, "scene": scene.name, **q.as_dict()})
    if args.json:
        args.json.write_text(
            json.dumps({"input_size": list(size), "precision": args.precision, "results": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
