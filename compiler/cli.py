"""`pdl-convert`: Detectron2 Panoptic-DeepLab -> generated TTNN module(s) with plan reports.

For each variant it writes <out>/<variant>.py (the TTNN module), <out>/<variant>.plan.md (the plan
report), the report's plots <out>/<variant>.{l1,dram,stages}.png and the modeled per-op times as a
tt-perf-report CSV <out>/<variant>.ops_perf_modeled.csv (compiler/perf_csv.py); with --ttnn-report DIR,
also ttnn's own report of the module run on a mock device, DIR/<variant>/ (what ttnn-visualizer opens).
Every file of a run is rendered before any is replaced, and they are replaced as one set
(converter/atomic.py): a failing run (a user error, or a module that real ttnn or --verify rejects)
leaves the previous output as it was; a killed one leaves either that or a committed new set, which
the next run completes.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Only modules without torch, Detectron2 or matplotlib here: --help and a bad option answer at once.
from converter.choices import (
    ALL_VARIANTS,
    CONFIG_HELP,
    DEFAULT_INPUT_SIZE,
    TAP_MODULES,
    config_path,
    parse_size,
    taps_for,
)
from converter.errors import UserError
from converter.ir import Graph
from converter.untrusted import printable
from hardware.targets import DEFAULT_TARGET, TARGETS
from passes.dtype_policy import PRECISION_HELP, PRECISIONS
from passes.overrides import Overrides

if TYPE_CHECKING:
    from compiler.bisect import Bisection
    from compiler.report import PlanReport
    from runtime.ttnn_mock import CheckResult

if TYPE_CHECKING:  # both import Detectron2, which only --verify needs
    from runtime.postprocess import FusionParams
    from runtime.quality import Quality

DEFAULT_OUT = Path("generated")
VERIFY_PCC_FLOOR = 0.99  # --verify's exit status; runtime/quality.py's stricter result bounds are reported
RANDOM_WEIGHTS_SEED = 0
EXIT_OK, EXIT_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass
class Progress:
    """Step lines on stderr for the long steps (none when quiet); records each step's seconds."""

    quiet: bool = True

    @contextmanager
    def step(self, what: str, seconds: dict[str, float], key: str) -> Iterator[None]:
        if not self.quiet:
            print(f"pdl-convert: {what} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        yield
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start

    def note(self, what: str) -> None:
        if not self.quiet:
            print(f"pdl-convert: {what}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Converted:
    variant: str
    files: dict[str, str]  # text files by name in the output directory: module and plan report
    plots: dict[str, bytes]  # the report's PNGs by name
    report: PlanReport
    graph: Graph  # the planned graph (its nodes hold the weights the module reads)
    seconds: dict[str, float]  # wall time per step
    check: CheckResult | None = None  # real ttnn's verdict on the module (runtime/ttnn_mock.py)
    ttnn_report: dict[str, bytes] | None = None  # ttnn's own report of the checked run, by file name

    def outputs(self) -> dict[str, bytes]:
        """Every file of this variant as bytes, by name."""
        return dict(sorted({**{k: v.encode() for k, v in self.files.items()}, **self.plots}.items()))


def _seeded_model(cfg):
    """Detectron2's model with its own initialization under a fixed seed (the generated code and the
    plan do not depend on weight values; --weights or --verify load real ones)."""
    import torch

    from converter.model import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        return build_model(cfg)


def variant_overrides(overrides: Overrides | None, variant: str) -> Overrides | None:
    """The pins that apply to `variant`: pins of heads the variant leaves out are dropped, so one
    file serves both variants (a typo in a head the variant has still fails)."""
    if overrides is None:
        return None
    omitted = {t.split(".")[0] for t in TAP_MODULES} - {t.split(".")[0] for t in taps_for(variant)}
    return Overrides({k: v for k, v in overrides.layers.items() if k.split(".")[0] not in omitted})


@dataclass(frozen=True)
class Planned:
    """One variant traced, planned and rendered: what the real-ttnn check and the report need."""

    variant: str
    graph: Graph
    module: str
    seconds: dict[str, float]


def plan_variant(
    variant: str,
    target_name: str,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    *,
    model=None,
    overrides: Overrides | None = None,
    progress: Progress | None = None,
    precision: str = "accurate",
    batch: int = 1,
) -> Planned:
    from converter.model import load_config
    from converter.trace import trace_model
    from hardware.targets import get_target
    from passes.pipeline import plan_graph_timed
    from templates.render import render_module

    progress = progress or Progress()
    seconds: dict[str, float] = {}
    target = get_target(target_name)
    if model is None:
        model = _seeded_model(load_config(input_size=input_size))
    batch_note = f", a batch of {batch}" if batch > 1 else ""
    with progress.step(
        f"{variant}: tracing at {input_size[0]}x{input_size[1]}{batch_note} (torch.export)", seconds, "trace"
    ):
        graph = trace_model(model, variant, input_size, batch)
    with progress.step(f"{variant}: planning for {target.name}", seconds, "plan"):
        graph, _ = plan_graph_timed(graph, target, variant_overrides(overrides, variant), rules=PRECISIONS[precision])
    with progress.step(f"{variant}: rendering the TTNN module", seconds, "render"):
        module = render_module(graph, target)
    return Planned(variant, graph, module, seconds)


def finish(
    planned: Planned,
    target_name: str,
    check: CheckResult | None = None,
    progress: Progress | None = None,
    ttnn_report: dict[str, bytes] | None = None,
) -> Converted:
    """The plan report, plots and modeled per-op CSV of a planned variant, with real ttnn's verdict
    when it was checked."""
    from compiler.perf_csv import csv_name, modeled_csv
    from compiler.report import build_report, render_markdown, render_plots
    from hardware.targets import get_target

    progress = progress or Progress()
    seconds = dict(planned.seconds)
    if check is not None:
        seconds["ttnn"] = check.seconds
    with progress.step(f"{planned.variant}: plan report and plots", seconds, "report"):
        report = build_report(planned.graph, get_target(target_name), check=check)
        files = {
            f"{planned.variant}.py": planned.module,
            f"{planned.variant}.plan.md": render_markdown(report),
            csv_name(planned.variant): modeled_csv(planned.graph, get_target(target_name)),
        }
        plots = render_plots(report)
    return Converted(planned.variant, files, plots, report, planned.graph, seconds, check, ttnn_report)


def convert(
    variant: str,
    target_name: str,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    *,
    model=None,
    overrides: Overrides | None = None,
    progress: Progress | None = None,
    precision: str = "accurate",
    ttnn_check: bool = False,
    batch: int = 1,
) -> Converted:
    """Trace, plan and render one variant: the module, its plan report and plots (nothing written).
    With `ttnn_check`, real ttnn runs the module on a mock device first and the report says how it went."""
    planned = plan_variant(
        variant,
        target_name,
        input_size,
        model=model,
        overrides=overrides,
        progress=progress,
        precision=precision,
        batch=batch,
    )
    check = check_text(variant, planned.module, target_name)[0] if ttnn_check else None
    return finish(planned, target_name, check, progress)


def check_text(variant: str, module: str, target, report: bool = False) -> tuple[CheckResult, dict[str, bytes] | None]:
    """Real ttnn's verdict on a module that exists only as text (written to a temporary file); with
    `report`, also ttnn's own report of the run (its files by name, read back into memory)."""
    from converter.atomic import write_text
    from runtime.ttnn_mock import check_module

    with tempfile.TemporaryDirectory(prefix="pdl-convert-") as tmp:
        path = Path(tmp) / f"{variant}.py"
        write_text(path, module)
        directory = Path(tmp) / "ttnn-report" if report else None
        result = check_module(path, target, report=directory)
        files = (
            {f.name: f.read_bytes() for f in sorted(directory.iterdir()) if f.is_file()}
            if directory is not None and directory.is_dir()
            else None
        )
        return result, files


def stale_files(out: Path, converted: Converted) -> list[str]:
    """Names of the files in `out` that are missing or differ from `converted` (but for `uncompared`)."""
    skip = uncompared(out, converted)
    return [
        name
        for name, data in converted.outputs().items()
        if name not in skip and (not (out / name).is_file() or (out / name).read_bytes() != data)
    ]


def uncompared(out: Path, converted: Converted) -> list[str]:
    """The plan report in `out` when it carries real ttnn's verdict and L1 per op but `converted` was
    not checked by real ttnn: only --ttnn-check can tell whether it is current (generated/ is such a set)."""
    path = out / f"{converted.variant}.plan.md"
    if converted.check is not None or not path.is_file():
        return []
    text = path.read_bytes()
    return [path.name] if b"\n- real ttnn: " in text and b"\n- real ttnn: not checked" not in text else []


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    variant: str
    backend: str
    quality: Quality | None  # runtime/quality.py's metrics against Detectron2's fp32 forward
    error: str = ""  # why the generated module did not run, if it did not
    image: str = ""  # which image of a batch (empty for a batch of one)

    @property
    def passed(self) -> bool:
        """The exit status's floor: PCC per head. The result bounds are reported, not enforced yet: the
        default precision does not keep them (README, "Accuracy policy")."""
        return (
            not self.error
            and self.quality is not None
            and all(s.pcc >= VERIFY_PCC_FLOOR for s in self.quality.heads.values())
        )

    def line(self) -> str:
        if self.error or self.quality is None:
            return f"verify {self.variant}: FAILED, the generated module did not run: {self.error}"
        q = self.quality
        heads = ", ".join(f"{h} PCC {s.pcc:.5f}" for h, s in q.heads.items())
        verdict = "ok" if self.passed else "BELOW FLOOR"
        what = f"{self.variant} {self.image}" if self.image else self.variant
        return "\n".join(
            [
                f"verify {what} on the {self.backend}: {heads} (floor {VERIFY_PCC_FLOOR}): {verdict}",
                f"  {q.summary()}",
                *(f"  outside a result bound: {v}" for v in q.violations()),
            ]
        )


def verify(
    converted: Converted,
    model,
    input_size: tuple[int, int],
    progress: Progress,
    fusion: FusionParams,
    batch: int = 1,
    replan: Callable[[Overrides], Graph] | None = None,
    overrides: Overrides | None = None,
) -> tuple[list[Verification], Bisection | None]:
    """Run the generated module (device if one opens, else the emulator) and Detectron2 on `batch`
    synthetic street scenes per chip of the target (a mesh runs them data parallel), and compare the
    heads and the panoptic results of each image (runtime/quality.py). With `replan` (the variant
    planned again with other `overrides`), also bisect: every device op against the fp32 interpreter,
    when the module ran, and the precision override that fixes the first op below the floor
    (compiler/bisect.py)."""
    import torch

    from converter.atomic import write_text
    from converter.reference import reference_outputs
    from hardware.targets import get_target
    from runtime.images import to_model_input
    from runtime.quality import compare
    from runtime.run import load_module, run_module
    from runtime.scenes import street_scene
    from runtime.weights import host_weights

    seconds = converted.seconds
    variant = converted.variant
    batch *= get_target(converted.report.target).num_chips
    # A street-like scene, not noise: noise drives the network far from anything it was built for.
    image = torch.cat([to_model_input(street_scene(input_size[1], input_size[0], seed=i)) for i in range(batch)])
    with progress.step(f"{variant}: converting weights for the device", seconds, "weights"):
        weights = host_weights(converted.graph)
    with (
        progress.step(f"{variant}: running the generated module", seconds, "verify"),
        tempfile.TemporaryDirectory(prefix="pdl-convert-") as tmp,
    ):
        path = Path(tmp) / f"{variant}.py"
        write_text(path, converted.files[f"{variant}.py"])
        try:
            result = run_module(load_module(path), weights, image)
        except UserError:
            raise
        except Exception as e:  # a compiler or emulator bug: the verdict, in one line
            reason = " ".join(str(e).split())
            return [Verification(variant, "", None, f"{type(e).__name__}: {reason}")], None
    with progress.step(f"{variant}: Detectron2 fp32 reference forward", seconds, "verify"):
        ref = reference_outputs(model, variant, image)
    bisection = None
    if replan is not None:
        from compiler.bisect import bisect, guide

        target = get_target(converted.report.target)
        with progress.step(f"{variant}: bisect: every op tapped, against the fp32 interpreter", seconds, "bisect"):
            bisection = bisect(converted.graph, target, weights, image, VERIFY_PCC_FLOOR, result.backend)
        if bisection.first_below is not None:
            with progress.step(
                f"{variant}: guide: {bisection.first_below.node} one precision step up at a time", seconds, "guide"
            ):
                guidance = guide(bisection, converted.graph, replan, overrides, target, image)
                assert guidance is not None
                bisection = replace(bisection, guidance=tuple(guidance.lines()))

    def one(outputs: dict, i: int) -> dict:
        return {k: v[i : i + 1] for k, v in outputs.items()}

    return [
        Verification(
            variant,
            result.backend,
            compare(one(result.outputs, i), one(ref, i), fusion),
            image=f"image {i + 1} of {batch}" if batch > 1 else "",
        )
        for i in range(batch)
    ], bisection


def with_profile(converted: Converted, target_name: str, progress: Progress) -> tuple[Converted, list[str]]:
    """The variant's output set with the profiled run's CSV beside the modeled one, and the table of
    measured against modeled time per layer (compiler/profile.py)."""
    from compiler.perf_csv import csv_name, layer_times, read_layer_times
    from compiler.profile import measured_name, measured_vs_modeled, profile_module
    from converter.atomic import write_text
    from hardware.targets import get_target

    variant = converted.variant
    with (
        progress.step(f"{variant}: running under tt-metal's device profiler", converted.seconds, "profile"),
        tempfile.TemporaryDirectory(prefix="pdl-convert-") as tmp,
    ):
        path = Path(tmp) / f"{variant}.py"
        write_text(path, converted.files[f"{variant}.py"])
        measured_csv = profile_module(path, get_target(target_name), Path(tmp))
        modeled = layer_times(csv.DictReader(io.StringIO(converted.files[csv_name(variant)])))
        measured = read_layer_times(measured_csv, {m.layer for m in modeled})
        files = {**converted.files, measured_name(variant): measured_csv.read_text()}
    title = f"profile {variant}: measured on the device against the cost model, per layer"
    table = [title, *measured_vs_modeled(modeled, measured)]
    return replace(converted, files=files), table


def with_bisection(converted: Converted, bisection: Bisection) -> Converted:
    """The variant's output set with the bisection's table and plot beside its plan report."""
    from compiler.bisect import bisect_names, plot_bisection

    text, plot = bisect_names(converted.variant)
    return replace(
        converted,
        files={**converted.files, text: "\n".join(bisection.lines()) + "\n"},
        plots={**converted.plots, plot: plot_bisection(bisection, converted.report.layers)},
    )


# --- command line ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every other user mistake
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _batch_argument(text: str) -> int:
    if not (text.strip().isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"batch size {text!r} is not a positive integer; write it like 2")
    return int(text)


def _size_argument(text: str) -> tuple[int, int]:
    """converter.model.parse_size, reported the way argparse reports a bad option value."""
    try:
        return parse_size(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pdl-convert",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "exit status: 0 ok; 1 --check found stale files or --verify failed (a metric outside the "
            "accuracy bounds, or the module did not run); 2 user error (one line on stderr); 130 interrupted.\n"
            "Same inputs give byte-identical files. With the defaults the result equals the "
            "committed generated/."
        ),
    )
    p.add_argument("--config", default=None, metavar="NAME|YAML", help=CONFIG_HELP)
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="PKL",
        help="Detectron2 checkpoint: a model-zoo .pkl or a .pth its trainer saved (read as data, "
        "never executed), checked against the config. The generated "
        "code does not depend on weight values; --verify runs with them. Default: seeded "
        "random weights (a warning says so)",
    )
    p.add_argument(
        "--variant",
        action="append",
        choices=ALL_VARIANTS,
        default=None,
        help="model to convert (repeatable; default: every variant of the config: panoptic_deeplab "
        "and deeplab_v3_plus, its semantic branch, for a Panoptic-DeepLab config; the one model "
        "of a DeepLab config)",
    )
    p.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        choices=list(TARGETS),
        metavar="{" + ",".join(TARGETS) + "}",
        help=f"device to plan for: L1 per core, compute grid, DRAM (default: {DEFAULT_TARGET}, "
        "the 5x4-core Blackhole grid); a mesh (n300, t3k, quietbox-4xp150, p300) plans one chip's "
        "program, which the runtime runs data parallel on every chip",
    )
    p.add_argument(
        "--input-size",
        type=_size_argument,
        default=None,
        metavar="HxW",
        help="input image size the module is generated for (default: the config's INPUT.CROP.SIZE, "
        f"{DEFAULT_INPUT_SIZE[0]}x{DEFAULT_INPUT_SIZE[1]} for the default config). H and W must be "
        "multiples of the encoder stride (16) and at least the config's ASPP pooling window at 1/16 "
        "(INPUT.CROP.SIZE / 16), which Detectron2 requires; a size that does not work is named with the "
        "sizes that do",
    )
    p.add_argument(
        "--batch-size",
        type=_batch_argument,
        default=1,
        metavar="N",
        help="images per forward on one chip (default: 1; a mesh target runs this many per chip); "
        "--verify runs N different scenes per chip",
    )
    p.add_argument(
        "--overrides",
        type=Path,
        default=None,
        metavar="FILE",
        help="YAML/JSON per-layer pins (sharding, slicing, act_block_h, memory, dtypes, fidelity) "
        "keyed by node name, Detectron2 module path, block prefix or pattern; see passes/overrides.py",
    )
    p.add_argument("--precision", choices=list(PRECISIONS), default="accurate", help=PRECISION_HELP)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="output directory (default: generated)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file in --out is missing or differs from a fresh conversion, and name it",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="also run each generated module (on a device if one opens, else the host emulator) "
        "and Detectron2's fp32 forward on one seeded image; print PCC, gain, bias and max error "
        "per head, panoptic quality, instance counts and semantic agreement, and the result "
        f"bounds they break (runtime/quality.py); exit 1 below PCC {VERIFY_PCC_FLOOR} on a head, "
        "and then nothing is written. Slow: about a minute at 512x1024",
    )
    p.add_argument(
        "--bisect",
        action="store_true",
        help="with --verify: run each module again with every op's output read back and compare each with "
        "the fp32 interpreter of the planned graph (PCC, max error, gain, relative error), one line per op "
        "in program order; name the first op below the PCC floor; write <variant>.bisect.txt and "
        "<variant>.bisect.png beside the plan report",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="on a Tenstorrent device: also run each module once under tt-metal's device profiler, write its "
        "ops_perf CSV as <variant>.ops_perf_measured.csv beside the modeled one and print measured against "
        "modeled time per layer (compiler/profile.py); without a device, an error",
    )
    p.add_argument(
        "--ttnn-check",
        action="store_true",
        help="run each generated module through the real ttnn 0.81.1 on a mock device of the target "
        "(its validation, allocator and circular-buffer checks; no numerics); the summary and "
        "the plan report give the verdict and real L1 per op; exit 1 if ttnn rejects it, and then nothing is "
        "written. "
        "About 30 s per module at 512x1024; on with --verify. generated/ is written with it",
    )
    p.add_argument(
        "--ttnn-report",
        type=Path,
        default=None,
        metavar="DIR",
        help="also --ttnn-check, with ttnn's own reporting on (TTNN_CONFIG_OVERRIDES: graph report, "
        "detailed buffers): leaves DIR/<variant>/ (db.sqlite, config.json), the report "
        "ttnn-visualizer opens (operations, tensors, L1 buffers per core over the program). "
        "Written with --out, only when real ttnn accepts every module. About 1 minute per module "
        "at 128x256; at 512x1024 ttnn needs over 14 GB of memory per module for it",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress lines and no summary (warnings, errors, --check and --verify results stay)",
    )
    return p


def _warn_random_weights(verify: bool) -> None:
    use = (
        "--verify runs with seeded random weights (realistic activations, not a trained model)"
        if verify
        else "the generated code and plan do not depend on weight values"
    )
    bar = "!" * 78
    print(
        f"{bar}\n!! pdl-convert: WARNING: no --weights given: using SEEDED RANDOM WEIGHTS "
        f"(seed {RANDOM_WEIGHTS_SEED}).\n!! {use}.\n!! Pass --weights model_final_bd324a.pkl for the "
        f"released Cityscapes model.\n{bar}",
        file=sys.stderr,
    )


def _load_model(args, size: tuple[int, int], progress: Progress, seconds: dict[str, float], tmp: Path):
    """(config, input size, variants to convert, Detectron2 model with the weights); every config, size and variant
    mistake is found before the model is built."""
    from converter.checkpoint import load_checkpoint, write_random_checkpoint
    from converter.model import check_config_variant, config_variants, load_config, native_input_size
    from hardware.targets import check_fits_dram, get_target

    with progress.step("loading config and building the Detectron2 model", seconds, "model"):
        cfg = load_config(args.config, input_size=size)
        size = size or native_input_size(cfg)
        check_fits_dram(get_target(args.target), size, args.batch_size)
        variants = list(dict.fromkeys(args.variant or config_variants(cfg)))
        for v in variants:
            check_config_variant(cfg, v)
        model = _seeded_model(cfg)
    weights = args.weights
    if weights is None:
        _warn_random_weights(args.verify)
        if not args.verify:
            return cfg, size, variants, model
        with progress.step("making seeded random weights (BN calibrated at 512x1024)", seconds, "weights"):
            weights = write_random_checkpoint(cfg, tmp / "random_weights.pkl", seed=RANDOM_WEIGHTS_SEED)
    with progress.step(f"loading weights {weights.name}", seconds, "weights"):
        return cfg, size, variants, load_checkpoint(model, weights)


def _files_state(c: Converted, out: Path, check: bool, written: bool) -> str:
    """The summary's files line: what happened to them, or with --check which differ."""
    if not check:
        return f"{len(c.outputs())} {'written' if written else 'not written'} in {out}: " + ", ".join(c.outputs())
    stale, skipped = stale_files(out, c), uncompared(out, c)
    n = len(c.outputs())
    state = f"{n} in {out}, {len(stale)} stale: {', '.join(stale)}" if stale else f"{n} up to date in {out}"
    return state + (
        f" ({', '.join(skipped)} not compared: it holds real ttnn's verdict, add --ttnn-check)" if skipped else ""
    )


def _summary(c: Converted, out: Path, files: str, size: tuple[int, int]) -> str:
    r = c.report
    s = c.seconds
    times = ", ".join(f"{k} {v:.1f} s" for k, v in s.items())
    return "\n".join(
        [
            f"{c.variant} on {r.target} at {_batch_prefix(c.graph)}{size[0]}x{size[1]} (config {r.config})",
            f"  nodes / convs      {r.nodes} / {r.convs} ({len(r.layers)} device ops)",
            f"  L1 peak per core   {r.l1_peak_per_core} B of {r.budget_per_core} B budget "
            f"({100 * r.l1_peak_per_core / r.budget_per_core:.1f}%)",
            f"  activations in L1  {r.activation_bytes_in_l1 / 1e6:.1f} MB of {r.activation_bytes / 1e6:.1f} MB "
            f"({100 * r.activation_bytes_in_l1 / max(r.activation_bytes, 1):.1f}%)",
            f"  DRAM traffic       {r.dram_bytes / 1e6:.1f} MB",
            f"  modeled latency    {r.latency_ms:.2f} ms (cost model, not a measurement)",
            f"  files              {files}",
            f"  stage times        {times}",
        ]
    )


def _batch_prefix(graph: Graph) -> str:
    n = graph.nodes[0].out.shape[0]  # the input node
    return f"a batch of {n} x " if n > 1 else ""


def write_outputs(out: Path, converted: Sequence[Converted]) -> None:
    """Replace the run's output files as one set (all or none, even if killed: converter.atomic);
    called only once all of them are rendered."""
    from converter.atomic import replace_files

    try:
        replace_files(out, {name: data for c in converted for name, data in c.outputs().items()})
    except OSError as e:  # no permission, disk full, ...: nothing was replaced
        raise UserError(
            f"cannot write {e.filename or out}: {e.strerror}; pass a writable --out with free space, "
            "its previous files are unchanged"
        ) from None


def write_ttnn_reports(directory: Path, converted: Sequence[Converted]) -> None:
    """Each variant's ttnn report into directory/<variant>/, each directory replaced as one set
    (the visualizer opens one directory per report)."""
    from converter.atomic import replace_files

    for c in converted:
        try:
            replace_files(directory / c.variant, c.ttnn_report or {})
        except OSError as e:
            raise UserError(
                f"cannot write {e.filename or directory}: {e.strerror}; pass a writable --ttnn-report with free space"
            ) from None


def check_outputs(out: Path, converted: Sequence[Converted]) -> list[str]:
    """One line per problem --check finds in `out` (read under a shared lock: no writer midway)."""
    from contextlib import nullcontext

    from converter.atomic import check_complete, locked

    with locked(out, exclusive=False) if out.is_dir() else nullcontext():
        check_complete(out, "--out")  # again: a writer may have been killed since check_paths
        return [
            f"pdl-convert: {out / name} is stale (missing or differs from a fresh conversion): "
            "run pdl-convert with the same options"
            for c in converted
            for name in stale_files(out, c)
        ]


def check_paths(args: argparse.Namespace) -> None:
    """The mistakes visible without a model, before the imports and the conversion that take minutes."""
    from converter.atomic import check_complete, check_writable_directory, interrupted, journal_names

    if args.check:  # reads --out only
        if args.out.exists() and not args.out.is_dir():
            raise UserError(f"--out {args.out} is a file, not a directory; pass a directory")
        check_complete(args.out, "--out")
        if args.ttnn_report is not None:
            raise UserError("--check writes nothing, --ttnn-report writes a report; pass one of them")
    else:
        check_writable_directory(args.out, "--out")
        if interrupted(args.out):  # finished by this run's write: unless its journal is damaged
            journal_names(args.out)
        if args.ttnn_report is not None:
            check_writable_directory(args.ttnn_report, "--ttnn-report")
    if args.bisect and not args.verify:
        raise UserError("--bisect compares each op of a --verify run with fp32: add --verify")
    if args.bisect and args.check:
        raise UserError("--check writes nothing, --bisect writes a table and a plot; pass one of them")
    if args.profile:
        if args.check:
            raise UserError("--check writes nothing, --profile writes the measured CSV; pass one of them")
        from compiler.profile import require_device

        require_device()
    config_path(args.config)  # a name of the family or an existing file
    for option, path in (("--weights", args.weights), ("--overrides", args.overrides)):
        if path is not None and not path.is_file():
            raise UserError(
                f"{option} {path} {'is not a file' if path.exists() else 'not found'}; pass an existing file"
            )


def run(args: argparse.Namespace) -> int:
    from passes.overrides import load_overrides

    check_paths(args)
    progress = Progress(quiet=args.quiet)
    size = args.input_size
    ttnn_check = args.ttnn_check or args.verify or args.profile or args.ttnn_report is not None
    overrides = load_overrides(args.overrides) if args.overrides is not None else None
    setup: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pdl-convert-") as tmp:
        cfg, size, variants, model = _load_model(args, size, progress, setup, Path(tmp))
        # Everything is rendered before anything is written: a failure leaves --out untouched.
        # each variant's real-ttnn check (a child process) runs while the next variant is planned; reported
        # checks one at a time: ttnn's detailed buffer capture holds every buffer page in memory (GBs)
        with ThreadPoolExecutor(max_workers=1 if args.ttnn_report is not None else len(variants)) as pool:
            planned, checks = [], []
            for v in variants:
                p = plan_variant(
                    v,
                    args.target,
                    size,
                    model=model,
                    overrides=overrides,
                    progress=progress,
                    precision=args.precision,
                    batch=args.batch_size,
                )
                if ttnn_check:
                    progress.note(f"{v}: real ttnn on a mock {args.target} device (in the background)")
                checks.append(
                    pool.submit(check_text, v, p.module, args.target, args.ttnn_report is not None)
                    if ttnn_check
                    else None
                )
                planned.append(p)
            converted = []
            for p, c in zip(planned, checks, strict=True):
                check, report = c.result() if c else (None, None)
                converted.append(finish(p, args.target, check, progress, report))
        profiles: list[str] = []
        if args.profile:  # only modules real ttnn accepts run on the device
            for i, done in enumerate(converted):
                if done.check is not None and done.check.accepted:
                    converted[i], table = with_profile(done, args.target, progress)
                    profiles += table
        # Checked before anything is written: a set real ttnn or --verify rejects never replaces --out.
        results: list[Verification] = []
        bisections: list[Bisection] = []
        if args.verify:
            from runtime.postprocess import FusionParams

            fusion = FusionParams.from_config(cfg)
            for i, done in enumerate(converted):

                def replan(pins: Overrides, variant: str = done.variant) -> Graph:
                    return plan_variant(
                        variant,
                        args.target,
                        size,
                        model=model,
                        overrides=pins,
                        precision=args.precision,
                        batch=args.batch_size,
                    ).graph

                verified, bisection = verify(
                    done,
                    model,
                    size,
                    progress,
                    fusion,
                    args.batch_size,
                    replan if args.bisect else None,
                    variant_overrides(overrides, done.variant),
                )
                results += verified
                if bisection is not None:
                    bisections.append(bisection)
                    converted[i] = with_bisection(done, bisection)
        rejected = [c.variant for c in converted if c.check is not None and not c.check.accepted]
        rejected = list(dict.fromkeys(rejected + [v.variant for v in results if not v.passed]))
        status = EXIT_OK
        if args.check:
            for line in check_outputs(args.out, converted):
                print(line, file=sys.stderr)
                status = EXIT_FAILED
        elif not rejected:
            with progress.step(
                f"writing {sum(len(c.outputs()) for c in converted)} files to {args.out}", setup, "write"
            ):
                write_outputs(args.out, converted)
                if args.ttnn_report is not None:
                    write_ttnn_reports(args.ttnn_report, converted)
    if not args.quiet:
        for done in converted:
            print(_summary(done, args.out, _files_state(done, args.out, args.check, not rejected), size))
        print("setup: " + ", ".join(f"{k} {v:.1f} s" for k, v in setup.items()))
    for done in converted:
        if done.check is not None and not (args.quiet and done.check.accepted):
            print(f"{done.variant}: {done.check.verdict()}")
            if not done.check.accepted:
                if done.check.statement:
                    print(f"  {done.check.statement}")
                status = EXIT_FAILED
    for v in results:
        print(v.line())
        if not v.passed:
            status = EXIT_FAILED
    for b in bisections:
        print("\n".join([*b.lines(), b.cost()]))
    if profiles:
        print("\n".join(profiles))
    if rejected and not args.check:
        print(
            f"pdl-convert: {', '.join(rejected)} failed the real-ttnn check or --verify: nothing written, {args.out} "
            "keeps its previous files (without --verify and --ttnn-check the files are written, to inspect them)",
            file=sys.stderr,
        )
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"pdl-convert: error: {printable(str(e))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:  # a size or batch this host cannot trace, though a chip's DRAM would hold it
        print("pdl-convert: error: out of host memory; use a smaller --input-size or --batch-size", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # not a bug: no traceback (the output set is all or nothing regardless)
        print("pdl-convert: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
