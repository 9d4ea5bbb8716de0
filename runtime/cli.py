"""`pdl-convert`: Detectron2 Panoptic-DeepLab -> generated TTNN module(s) and plan summaries.

    pdl-convert [--variant V ...] [--target T] [--out DIR] [--check]

Writes <out>/<variant>.py and <out>/<variant>.plan.md for each variant (both by default). With
--check nothing is written: the exit status is 1 when a file in <out> differs from a fresh render.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from converter.errors import UserError
from converter.model import DEFAULT_INPUT_SIZE, VARIANTS
from passes.targets import DEFAULT_TARGET, TARGETS

DEFAULT_OUT = Path("generated")


@dataclass(frozen=True)
class Converted:
    variant: str
    files: dict[str, str]  # file name in the output directory -> text


def convert(variant: str, target_name: str, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE) -> Converted:
    """Trace, plan and render one variant. Weights do not change the generated text: the model is
    built with Detectron2's own initialization; the runtime loads the checkpoint's weights."""
    from converter.model import build_model, load_config
    from converter.trace import trace_model
    from passes.pipeline import plan_graph
    from passes.summary import render_markdown, summarize
    from passes.targets import get_target
    from templates.render import render_module

    target = get_target(target_name)
    graph = plan_graph(trace_model(build_model(load_config(input_size=input_size)), variant, input_size), target)
    return Converted(variant, {f"{variant}.py": render_module(graph, target),
                               f"{variant}.plan.md": render_markdown(summarize(graph, target))})


def stale_files(out: Path, converted: Converted) -> list[str]:
    """Names of the files in `out` that are missing or differ from `converted`."""
    return [name for name, text in converted.files.items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pdl-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", choices=VARIANTS,
                        help="model variant (repeatable; default: all)")
    parser.add_argument("--target", default=DEFAULT_TARGET, choices=sorted(TARGETS))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: generated)")
    parser.add_argument("--check", action="store_true", help="only compare --out with a fresh render")
    args = parser.parse_args(argv)
    from runtime.atomic import write_text

    try:
        status = 0
        for variant in args.variant or VARIANTS:
            converted = convert(variant, args.target)
            if args.check:
                stale = stale_files(args.out, converted)
                for name in stale:
                    print(f"{args.out / name} differs from a fresh render: run pdl-convert", file=sys.stderr)
                status |= bool(stale)
                continue
            for name, text in converted.files.items():
                write_text(args.out / name, text)
                print(args.out / name)
        return status
    except UserError as e:
        print(f"pdl-convert: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
