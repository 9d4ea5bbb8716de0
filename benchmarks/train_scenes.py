"""Train Panoptic-DeepLab (the released config's architecture) on the built-in street scenes and write a
Detectron2 model-zoo .pkl that pdl-convert, pdl-demo, pdl-tune and the benchmarks load as any checkpoint
(runtime/training.py says how). Then print what it learned on held-out scenes.

Usage: .venv/bin/python benchmarks/train_scenes.py --out FILE [--minutes 30] [--eval-scenes 16]
       .venv/bin/python benchmarks/train_scenes.py --cached [--minutes 30]   # the user-cache copy
A minute of budget is STEPS_PER_MINUTE steps, however long they take here (deterministic).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from converter.checkpoint import load_checkpoint
from converter.model import build_model
from runtime.postprocess import FusionParams
from runtime.training import (
    BATCH,
    TRAIN_SIZE,
    evaluate,
    steps_for,
    trained_checkpoint,
    training_config,
    write_trained_checkpoint,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the checkpoint here")
    where.add_argument("--cached", action="store_true", help="train into the user cache unless already there")
    ap.add_argument("--minutes", type=float, default=30.0, help="training budget (fixed steps per minute)")
    ap.add_argument("--eval-scenes", type=int, default=16, help="held-out scenes (seeds 0..N-1) to evaluate on")
    args = ap.parse_args(argv)
    start = time.monotonic()
    print(f"{steps_for(args.minutes)} steps of {BATCH} scenes at {TRAIN_SIZE[0]}x{TRAIN_SIZE[1]}", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    path = (
        trained_checkpoint(args.minutes, log) if args.cached else write_trained_checkpoint(args.out, args.minutes, log)
    )
    print(f"checkpoint {path} ({path.stat().st_size / 1e6:.0f} MB) after {time.monotonic() - start:.0f} s", flush=True)
    if args.eval_scenes:
        cfg = training_config()
        model = load_checkpoint(build_model(cfg), path)
        learned = evaluate(model, range(args.eval_scenes), TRAIN_SIZE, FusionParams.from_config(cfg))
        print(f"held-out scenes 0..{args.eval_scenes - 1} at {TRAIN_SIZE[0]}x{TRAIN_SIZE[1]}: {learned.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
