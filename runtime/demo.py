"""The panoptic demo: images in, one visualisation per image and runner out, runners compared.

Mirrors Tenstorrent's hand-written `run_panoptic_deeplab.py <image_or_dir> <weights> <output_dir>`:
every image is resized to the model input size and run through each runner (`ttnn`: the generated
TTNN code, `pytorch`: Detectron2 itself); each runner's `{runner}_output/` directory gets
`{name}_original.jpg` (the resized input) and `{name}_panoptic.jpg` (`{name}_semantic.jpg` for the
semantic-only DeepLabV3+ variant). Beyond it: both runners' results are compared per image (instance
counts, and against the `pytorch` runner as reference, runtime/quality.py's metrics: panoptic quality,
semantic agreement, per-head PCC, gain, bias and error), and `summary.json` records the comparison (no
timings, so reruns give identical files).

A runner is any `Callable[[Tensor 1x3xHxW RGB 0-255], dict of head outputs]`, so this module does
not care how a model is run; `main` (the `pdl-demo` console script) builds the real ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from converter.atomic import check_writable_directory, locked, write_text
from converter.checkpoint import load_checkpoint, write_random_checkpoint
from converter.choices import ALL_VARIANTS, CONFIG_HELP, config_path
from converter.errors import UserError
from converter.model import (
    build_model,
    check_config_variant,
    config_variants,
    load_config,
    native_input_size,
    parse_size,
    with_crop_size,
)
from converter.untrusted import printable
from hardware.targets import DEFAULT_TARGET, TARGETS, check_fits_dram, get_target
from passes.dtype_policy import PRECISION_HELP, PRECISIONS
from runtime.images import SourceImage, collect_images, resize_to_model, to_model_input
from runtime.postprocess import FusionParams, Segmentation, fuse
from runtime.quality import compare
from runtime.scenes import street_scene
from runtime.visualize import overlay, save_jpeg

Runner = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
SCENES_TOKEN = ":scenes"  # image_or_dir value for the built-in synthetic street scenes
SCENE_SIZE = (1024, 2048)  # (H, W) of a Cityscapes frame, so the demo resizes them like real photos
SCENE_SEEDS = (0, 1, 2)
REFERENCE_RUNNER = "pytorch"  # the other runner's result is judged against it


@dataclass(frozen=True)
class RunnerResult:
    instances: int | None  # None for a semantic-only model
    classes: list[int]  # class ids present in the semantic map, ascending
    files: list[str]  # written, relative to the output directory
    seconds: float  # runner call only (not post-processing)


@dataclass(frozen=True)
class ImageReport:
    name: str
    runners: dict[str, RunnerResult]
    semantic_agreement: float | None  # % of pixels where the two runners' class maps agree
    quality: dict | None = None  # runtime/quality.py's Quality.as_dict() of the other runner vs the reference

    def line(self) -> str:
        parts = []
        for runner, r in self.runners.items():
            what = "semantic only" if r.instances is None else f"{r.instances} instances"
            parts.append(f"{runner} {what} ({r.seconds:.2f} s)")
        if self.semantic_agreement is not None:
            parts.append(f"semantic agreement {self.semantic_agreement:.2f}%")
        if self.quality is not None and self.quality["pq"] is not None:
            parts.append(f"PQ {self.quality['pq']:.3f}")
        return f"{self.name}: " + ", ".join(parts)


def runner_dir(runner: str) -> str:
    return f"{runner}_output"


def run_demo(
    inputs: Sequence[SourceImage],
    output_dir: Path,
    runners: Mapping[str, Runner],
    model_input_size: tuple[int, int],
    *,
    fusion: FusionParams,
    batch: int = 1,
) -> list[ImageReport]:
    """Run every image through every runner, `batch` images per call (a mesh's batch: the last one is
    filled up with copies of its last image, whose results are dropped), write the visualisations,
    compare the runners (an image that cannot be decoded is skipped with a line on stderr)."""
    if not runners:
        raise ValueError("run_demo needs at least one runner")
    output_dir = Path(output_dir)
    reports = []
    pending: list[tuple[SourceImage, Image.Image]] = []
    for i, source in enumerate(inputs):
        try:
            pending.append((source, source.load(model_input_size)))  # decoded now: one batch in memory at a time
        except ValueError as e:  # its header read, its pixels do not (e.g. truncated): skip it
            print(f"skipped {source.name}: {e}", file=sys.stderr)
        if pending and (len(pending) == batch or i == len(inputs) - 1):
            reports += _run_batch(pending, output_dir, runners, fusion, batch)
            pending = []
    write_text(output_dir / "summary.json", summary_json(reports))
    return reports


def _run_batch(
    pending: list[tuple[SourceImage, Image.Image]],
    output_dir: Path,
    runners: Mapping[str, Runner],
    fusion: FusionParams,
    batch: int,
) -> list[ImageReport]:
    xs = [to_model_input(image) for _, image in pending]
    x = torch.cat(xs + xs[-1:] * (batch - len(xs)))
    heads: dict[str, Mapping[str, torch.Tensor]] = {}
    seconds: dict[str, float] = {}
    for runner, run in runners.items():
        start = time.perf_counter()
        heads[runner] = run(x)
        seconds[runner] = (time.perf_counter() - start) / len(xs)
    reports = []
    for i, (source, image) in enumerate(pending):
        results: dict[str, RunnerResult] = {}
        segs: dict[str, Segmentation] = {}
        outs = {runner: {k: v[i : i + 1] for k, v in out.items()} for runner, out in heads.items()}
        for runner, outputs in outs.items():
            seg = segs[runner] = fuse(outputs, fusion)
            results[runner] = RunnerResult(
                instances=None if seg.panoptic is None else len(seg.instances),
                classes=sorted(int(c) for c in np.unique(seg.semantic)),
                files=_write_images(output_dir, runner, source.name, image, seg, fusion.class_colors),
                seconds=seconds[runner],
            )
        agreement = quality = None
        if len(runners) == 2 and REFERENCE_RUNNER in runners:
            (other,) = (r for r in runners if r != REFERENCE_RUNNER)
            q = compare(
                outs[other], outs[REFERENCE_RUNNER], fusion, segmentations=(segs[other], segs[REFERENCE_RUNNER])
            )
            agreement, quality = q.semantic_agreement * 100.0, q.as_dict()
        reports.append(ImageReport(source.name, results, agreement, quality))
    return reports


def _write_images(output_dir: Path, runner: str, name: str, image, seg: Segmentation, colors=()) -> list[str]:
    kind = "semantic" if seg.panoptic is None else "panoptic"
    files = [f"{runner_dir(runner)}/{name}_original.jpg", f"{runner_dir(runner)}/{name}_{kind}.jpg"]
    save_jpeg(output_dir / files[0], image)
    save_jpeg(output_dir / files[1], overlay(image, seg, colors))
    return files


def summary_json(reports: Sequence[ImageReport]) -> str:
    """The comparison as JSON, without timings (same inputs -> same bytes)."""

    def strip(report: ImageReport) -> dict:
        d = asdict(report)
        for r in d["runners"].values():
            del r["seconds"]
        if d["semantic_agreement"] is not None:
            d["semantic_agreement"] = round(d["semantic_agreement"], 4)
        return d

    return json.dumps({"images": [strip(r) for r in reports]}, indent=2, sort_keys=True) + "\n"


# ---- the pdl-demo command ------------------------------------------------------------------------

_DESCRIPTION = f"""\
Run Panoptic-DeepLab on images and write panoptic visualisations, like Tenstorrent's hand-written
run_panoptic_deeplab.py. Each image is resized to the model input size (default 512x1024). Output:
OUTPUT_DIR/ttnn_output/ and OUTPUT_DIR/pytorch_output/ with NAME_original.jpg and NAME_panoptic.jpg
(with --variant deeplab_v3_plus, which has no instance heads: NAME_semantic.jpg instead), and
OUTPUT_DIR/summary.json. One line per image compares the runners.

Runners: 'pytorch' is Detectron2's own model; 'ttnn' is the TTNN code pdl2ttnn generates for this
config, size and --target, run on a Tenstorrent device when one opens, else on the host emulator
(PDL2TTNN_BACKEND=device|emulator forces one).

A mesh --target (n300, t3k, quietbox-4xp150, p300) runs the TTNN code data parallel on its chips:
images go through in batches of one per chip.

IMAGE_OR_DIR is an image file (jpg, jpeg, png, bmp, tif, tiff) or a directory of them; unreadable
files are skipped with a message. '{SCENES_TOKEN}' uses {len(SCENE_SEEDS)} built-in synthetic street scenes.
WEIGHTS is a Detectron2 model-zoo .pkl (e.g. model_final_bd324a.pkl) or a .pth its trainer saved,
or pass --random-weights instead of it for seeded random weights.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pdl-demo",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="pdl-demo IMAGE_OR_DIR (WEIGHTS.pkl | --random-weights) OUTPUT_DIR [options]",
    )
    p.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR [WEIGHTS.pkl] OUTPUT_DIR", help=argparse.SUPPRESS)
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="seeded random weights instead of a checkpoint (pipeline check; the pictures mean nothing)",
    )
    p.add_argument("--config", default=None, metavar="NAME|YAML", help=CONFIG_HELP)
    p.add_argument(
        "--variant",
        default=None,
        choices=ALL_VARIANTS,
        help="deeplab_v3_plus / deeplab_v3: semantic segmentation only, writes NAME_semantic.jpg "
        "(default: the config's first variant, panoptic_deeplab for a Panoptic-DeepLab config)",
    )
    p.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        choices=sorted(TARGETS),
        help="TTNN runner: device target (default: %(default)s)",
    )
    p.add_argument("--precision", choices=list(PRECISIONS), default="accurate", help="TTNN runner: " + PRECISION_HELP)
    p.add_argument(
        "--trace", action="store_true", help="TTNN runner: capture the forward once, replay it for later batches"
    )
    p.add_argument(
        "--two-queues",
        action="store_true",
        help="TTNN runner: write inputs on a second command queue while the first computes",
    )
    p.add_argument(
        "--weight-cache", type=Path, default=None, metavar="DIR", help="TTNN runner: cache of prepared device weights"
    )
    p.add_argument("--pytorch-only", action="store_true", help="run only the Detectron2 reference")
    p.add_argument(
        "--input-size",
        default=None,
        metavar="HxW",
        help="model input size (default: the config's training crop, 512x1024 for the default config). "
        "Another size sets "
        "ASPP image pooling to that size's global mean, as it is at 512x1024: quick looks only",
    )
    return p


@dataclass(frozen=True)
class DemoArgs:
    inputs: str
    weights: Path | None
    output_dir: Path
    config: str | None
    variant: str | None
    input_size: tuple[int, int] | None
    pytorch_only: bool
    target: str
    precision: str
    trace: bool
    two_queues: bool
    weight_cache: Path | None


def parse_args(argv: Sequence[str]) -> DemoArgs:
    a = _parser().parse_intermixed_args(argv)  # WEIGHTS or --random-weights sits between the paths
    want = 2 if a.random_weights else 3
    if len(a.paths) != want:
        form = (
            "IMAGE_OR_DIR OUTPUT_DIR with --random-weights"
            if a.random_weights
            else "IMAGE_OR_DIR WEIGHTS.pkl OUTPUT_DIR (or IMAGE_OR_DIR OUTPUT_DIR --random-weights)"
        )
        raise UserError(f"expected {form}, got {len(a.paths)} path(s): {' '.join(a.paths)}")
    return DemoArgs(
        inputs=a.paths[0],
        weights=None if a.random_weights else Path(a.paths[1]),
        output_dir=Path(a.paths[-1]),
        config=a.config,
        variant=a.variant,
        input_size=parse_size(a.input_size) if a.input_size else None,
        pytorch_only=a.pytorch_only,
        target=a.target,
        precision=a.precision,
        trace=a.trace,
        two_queues=a.two_queues,
        weight_cache=a.weight_cache,
    )


def _scene(seed: int, size: tuple[int, int]) -> Image.Image:
    h, w = SCENE_SIZE
    return resize_to_model(street_scene(w, h, seed=seed), size)


def load_inputs(inputs: str) -> tuple[list[SourceImage], list[str]]:
    if inputs == SCENES_TOKEN:
        return [SourceImage(f"scene_{s}", partial(_scene, s)) for s in SCENE_SEEDS], []
    collected = collect_images(Path(inputs))
    return collected.images, collected.skipped


def pytorch_runner(model, variant: str) -> Runner:
    """Detectron2's own forward, returning its head outputs."""
    from converter.reference import reference_outputs

    return lambda x: reference_outputs(model, variant, x)


def ttnn_runner(model, weights: Path, variant: str, size: tuple[int, int], args: DemoArgs, workdir: Path):
    """The generated TTNN code for this model, run by runtime/run.py (a device when one opens, else the
    host emulator; PDL2TTNN_BACKEND forces one): a `Session` that keeps its device (or the target's
    mesh) open and takes batches of `batch_size` images; close it when done. The module is traced,
    planned and rendered here, from the same config and size as the reference, rather than taken from
    generated/ (which is for one target and size only); the prepared host weights go to --weight-cache
    when given."""
    from converter.trace import trace_model
    from hardware.targets import get_target
    from passes.pipeline import plan_graph
    from runtime.run import Session, load_module
    from runtime.weights import cache_key, file_digest, load_weights
    from templates.render import render_module

    target = get_target(args.target)
    graph = plan_graph(trace_model(model, variant, size), target, rules=PRECISIONS[args.precision])
    text = render_module(graph, target)
    path = workdir / f"{variant}.py"
    write_text(path, text)
    module = load_module(path)
    host, _ = load_weights(args.weight_cache or workdir, cache_key(file_digest(weights), text), lambda: graph)
    return Session(module, host, two_queues=args.two_queues, trace=args.trace)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except UserError as e:
        print(f"pdl-demo: error: {printable(str(e))}", file=sys.stderr)
        return 2
    except MemoryError:  # a size this host cannot run, though a chip's DRAM would hold it
        print("pdl-demo: error: out of host memory; use a smaller --input-size", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk or a file limit (temporary files, the weight cache, OUTPUT_DIR)
        where = printable(str(e.filename)) if e.filename else "a file"
        print(
            f"pdl-demo: error: cannot write {where}: {e.strerror}; free space or pass another OUTPUT_DIR",
            file=sys.stderr,
        )
        return 2


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Mistakes in paths cost nothing to find: before the model is built and the images are run.
    check_writable_directory(args.output_dir, "OUTPUT_DIR")
    if args.weight_cache is not None:
        check_writable_directory(args.weight_cache, "--weight-cache")
    if args.weights is not None and not args.weights.is_file():
        raise UserError(f"WEIGHTS {args.weights} is not a file; pass a Detectron2 checkpoint (.pkl or .pth)")
    config_path(args.config)  # a name of the family or an existing file
    cfg = load_config(args.config)
    variant = args.variant or config_variants(cfg)[0]
    check_config_variant(cfg, variant)
    size = args.input_size or native_input_size(cfg)
    check_fits_dram(get_target(args.target), size, 1)
    if args.input_size:
        cfg = with_crop_size(cfg, size)
    images, skipped = load_inputs(args.inputs)
    for line in skipped:
        print(line, file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pdl-demo-") as tmp:
        weights = args.weights
        if weights is None:
            weights = write_random_checkpoint(cfg, Path(tmp) / "random_weights.pkl", seed=0)
        model = load_checkpoint(build_model(cfg), weights)
        # PyTorch first: its pictures are written even if the TTNN run of an image fails.
        runners: dict[str, Runner] = {"pytorch": pytorch_runner(model, variant)}
        with ExitStack() as stack:
            batch = 1
            if not args.pytorch_only:
                session = stack.enter_context(ttnn_runner(model, weights, variant, size, args, Path(tmp)))
                runners["ttnn"], batch = session, session.batch_size
            print(
                f"{len(images)} image(s) at {size[0]}x{size[1]}, config {cfg.PDL2TTNN_CONFIG_NAME}, variant "
                f"{variant}, runners: {', '.join(runners)}"
                + (f", batches of {batch} ({args.target})" if batch > 1 else "")
            )
            args.output_dir.mkdir(parents=True, exist_ok=True)
            with locked(args.output_dir, exclusive=True):  # a second demo into it would mix the two runs' files
                fusion = FusionParams.from_config(cfg)
                reports = run_demo(images, args.output_dir, runners, size, fusion=fusion, batch=batch)
    for report in reports:
        print(report.line())
    print(f"wrote {', '.join(runner_dir(r) + '/' for r in runners)} and summary.json in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
