"""Debug command: trace the model and show what the front end produced.

    python -m converter [--config YAML] [--variant panoptic_deeplab|deeplab_v3_plus] [--input-size HxW]

Uses Detectron2's random init (no checkpoint is needed to trace). User mistakes print one line and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from converter.errors import UserError


def main(argv: list[str] | None = None) -> int:
    from converter.model import VARIANTS, build_model, load_config, parse_size
    from converter.trace import trace_model

    parser = argparse.ArgumentParser(prog="python -m converter", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="Detectron2 Panoptic-DeepLab YAML")
    parser.add_argument("--variant", choices=VARIANTS, default="panoptic_deeplab")
    parser.add_argument("--input-size", default="512x1024", help="HxW of the 1x3xHxW input")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.input_size)
        model = build_model(load_config(args.config, size))
        start = time.perf_counter()
        graph = trace_model(model, args.variant, size)
        seconds = time.perf_counter() - start
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    hist = graph.histogram()
    print(f"{args.variant} {size[0]}x{size[1]} ({graph.meta['config']}): {len(graph)} nodes, "
          f"{hist.get('conv2d', 0)} convs, traced in {seconds:.2f} s")
    for op, count in hist.items():
        print(f"  {op:18s} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
