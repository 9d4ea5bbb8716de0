"""Debug command: trace the model and show what the front end produced.

    python -m converter [--config YAML] [--variant panoptic_deeplab|deeplab_v3_plus] [--input-size HxW]

Uses Detectron2's random init (no checkpoint is needed to trace). User mistakes print one line and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from converter.errors import UserError
from converter.untrusted import printable


def main(argv: list[str] | None = None) -> int:
    from converter.choices import ALL_VARIANTS, CONFIG_HELP
    from converter.model import build_model, config_variants, load_config, native_input_size, parse_size
    from converter.trace import trace_model

    parser = argparse.ArgumentParser(prog="python -m converter", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help=CONFIG_HELP)
    parser.add_argument("--variant", choices=ALL_VARIANTS, default=None, help="default: the config's first")
    parser.add_argument("--input-size", default=None, help="HxW of the 1x3xHxW input (default: the config's crop)")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.input_size) if args.input_size else None
        cfg = load_config(args.config, size)
        size = size or native_input_size(cfg)
        model = build_model(cfg)
        variant = args.variant or config_variants(cfg)[0]
        start = time.perf_counter()
        graph = trace_model(model, variant, size)
        seconds = time.perf_counter() - start
    except UserError as e:
        print(f"error: {printable(str(e))}", file=sys.stderr)
        return 2
    hist = graph.histogram()
    print(
        f"{variant} {size[0]}x{size[1]} ({graph.meta['config']}): {len(graph)} nodes, "
        f"{hist.get('conv2d', 0)} convs, traced in {seconds:.2f} s"
    )
    for op, count in hist.items():
        print(f"  {op:18s} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
