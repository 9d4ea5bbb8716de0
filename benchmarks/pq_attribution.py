"""Which head's decisions cost panoptic quality (issue #15): PQ against Detectron2 fp32 when one head
comes from the TTNN run and the others from Detectron2, per built-in scene and weight seed, plus the
reference with only its center heatmap rounded to bfloat16 (what a bfloat16 center output costs alone).

Usage: .venv/bin/python benchmarks/pq_attribution.py [--precision accurate] [--seeds 0 12345]
Slow: one emulated forward per scene and seed, then nine panoptic fusions each (Detectron2's grouping
of pixels to centers takes about half a minute per fusion at 512x1024 on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from converter.checkpoint import load_checkpoint, write_random_checkpoint
from converter.model import DEFAULT_INPUT_SIZE, build_model, load_config
from hardware.targets import DEFAULT_TARGET
from passes.dtype_policy import PRECISIONS
from runtime.demo import SCENES_TOKEN, DemoArgs, load_inputs, pytorch_runner, ttnn_runner
from runtime.images import to_model_input
from runtime.postprocess import FusionParams, fuse
from runtime.quality import panoptic_quality

HEADS = ("sem_seg", "center", "offset")
# column -> the heads taken from the TTNN run (the others from Detectron2)
COLUMNS = {
    "ttnn": HEADS,
    "sem only": ("sem_seg",),
    "center only": ("center",),
    "offset only": ("offset",),
    "sem=ref": ("center", "offset"),
    "center=ref": ("sem_seg", "offset"),
    "offset=ref": ("sem_seg", "center"),
}


def _panoptic(heads: Mapping[str, torch.Tensor], fusion: FusionParams) -> np.ndarray:
    panoptic = fuse(heads, fusion).panoptic
    assert panoptic is not None  # a panoptic model's heads
    return panoptic


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", choices=list(PRECISIONS), default="accurate")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 12345])
    args = ap.parse_args(argv)
    size, cfg = DEFAULT_INPUT_SIZE, load_config()
    fusion = FusionParams.from_config(cfg)
    scenes, _ = load_inputs(SCENES_TOKEN)
    print(f"PQ vs Detectron2 fp32, {args.precision} precision, {size[0]}x{size[1]}, {DEFAULT_TARGET} (emulator)")
    print(f"{'seed':>5s} {'scene':8s} " + " ".join(f"{c:>11s}" for c in COLUMNS) + f" {'ref ctr bf16':>12s}")
    with tempfile.TemporaryDirectory(prefix="pdl-pq-") as tmp:
        for seed in args.seeds:
            weights = write_random_checkpoint(cfg, Path(tmp) / f"seed{seed}.pkl", seed=seed)
            model = load_checkpoint(build_model(cfg), weights)
            demo_args = DemoArgs(
                inputs=SCENES_TOKEN,
                weights=weights,
                output_dir=Path(tmp),
                config=None,
                variant="panoptic_deeplab",
                input_size=size,
                pytorch_only=False,
                target=DEFAULT_TARGET,
                precision=args.precision,
                trace=False,
                two_queues=False,
                weight_cache=None,
            )
            reference = pytorch_runner(model, "panoptic_deeplab")
            with ttnn_runner(model, weights, "panoptic_deeplab", size, demo_args, Path(tmp)) as ttnn:
                for scene in scenes:
                    x = to_model_input(scene.load(size))
                    got, ref = ttnn(x), reference(x)
                    truth = _panoptic(ref, fusion)
                    mixes = [{h: (got if h in heads else ref)[h] for h in HEADS} for heads in COLUMNS.values()]
                    mixes.append({**ref, "center": ref["center"].bfloat16().float()})
                    pqs = [
                        panoptic_quality(
                            _panoptic(m, fusion), truth, fusion.thing_ids, ref["sem_seg"].shape[1], fusion.label_divisor
                        )[0]
                        for m in mixes
                    ]
                    print(
                        f"{seed:5d} {scene.name:8s} " + " ".join(f"{v:11.4f}" for v in pqs[:-1]) + f" {pqs[-1]:12.4f}"
                    )
    return 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
