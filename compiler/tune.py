"""pdl-tune: automatic mixed precision. The cheapest per-block dtype/fidelity whose measured effect
keeps every head within the accuracy bounds, written as an overrides file pdl-convert takes.

How (issue #18's "automatic mixed precision", judged by issue #15's head bounds):
- Units: the convs of one Detectron2 block (stem, res2..res5, each decoder stage of each head, each
  head's own convs); the first conv and the head predictors keep the dtype policy's exact precision.
- Levels (LEVELS): the dtype policy's own choice, LoFi with bfloat8_b weights, HiFi2 with bfloat8_b
  weights, HiFi2 with bfloat16 weights, HiFi4 with bfloat16 weights and fp32 accumulation (the top).
  Their modeled cost per unit is read off `passes.cost_model.evaluate` of the whole plan with every
  unit at that level.
- Sensitivity, on the emulator against Detectron2 fp32 (one built-in scene per checkpoint, at the
  tuning size, 128x256 by default: a forward there takes seconds, against tens of seconds at 512x1024):
  every unit at the top level (the baseline), then each unit alone at each lower level. Per head it
  records PCC, gain and bias (runtime/quality.py).
- Search: greedy from the top level. Effects are taken as additive (1 - PCC, gain - 1 and bias add up
  over units); the move to any cheaper level that saves the most time per unit of predicted damage among those
  predicted to keep every bound is taken, until none is left. The result is then measured at the full
  input size; if it breaks a bound there (the tuning size underestimates some errors: center PCC at
  512x1024 is below 128x256's), that bound's predicted use is scaled by measured / predicted and the
  search runs again (at most MAX_VALIDATIONS full-size measurements; then the top level).
- Every measurement is cached (--cache) by the checkpoint's digest, the generated module's text (the
  plan) and the image: a second run with the same inputs runs no forward.
Bounds: `quality` (default) = issue #15's per-head bounds (runtime/quality.py: PCC_FLOOR, semantic
gain, center/offset bias); `pcc99` = PCC >= 0.99 per head (issue #18's floor). PQ and instance counts
are not a per-block property and are not searched on; check the result with benchmarks/quality.py.

Usage: pdl-tune [--weights PKL ... | --seeds 0 12345] [--bounds quality|pcc99] [--tune-size 128x256]
       [--target blackhole-20] [--units U ...] [--out overrides.yaml] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from converter.errors import UserError
from converter.ir import Graph
from converter.ops import is_conv
from converter.untrusted import printable
from passes.overrides import LayerOverride, Overrides

HEADS = ("sem_seg", "center", "offset")
# name, pins; cheapest first
LEVELS: tuple[tuple[str, LayerOverride], ...] = (
    ("policy", LayerOverride()),  # no pins: the dtype policy's own choice (passes/dtype_policy.py)
    ("LoFi/bf8w", LayerOverride(weights_dtype="bfloat8_b", math_fidelity="LoFi")),
    ("HiFi2/bf8w", LayerOverride(weights_dtype="bfloat8_b", math_fidelity="HiFi2", dtype="bfloat16")),
    ("HiFi2/bf16w", LayerOverride(weights_dtype="bfloat16", math_fidelity="HiFi2", dtype="bfloat16")),
    (
        "HiFi4/bf16w",
        LayerOverride(weights_dtype="bfloat16", math_fidelity="HiFi4", dtype="bfloat16", fp32_dest_acc=True),
    ),
)
TOP = len(LEVELS) - 1
MAX_VALIDATIONS = 6
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Bounds:
    name: str
    pcc_floor: dict[str, float]
    gain_tolerance: dict[str, float]  # |gain - 1| <= tolerance
    bias_limit: dict[str, float]  # |bias| < limit (reference std)

    def deficits(self, m: dict[str, dict[str, float]]) -> dict[str, float]:
        """Per constraint, the used share of its allowance (> 1: broken). m: head -> pcc/gain/bias."""
        out = {}
        for h, floor in self.pcc_floor.items():
            if h in m:
                out[f"{h} PCC"] = (1.0 - m[h]["pcc"]) / (1.0 - floor)
        for h, tol in self.gain_tolerance.items():
            if h in m:
                out[f"{h} gain"] = abs(m[h]["gain"] - 1.0) / tol
        for h, limit in self.bias_limit.items():
            if h in m:
                out[f"{h} bias"] = abs(m[h]["bias"]) / limit
        return out

    def broken(self, m: dict[str, dict[str, float]]) -> list[str]:
        return [k for k, v in self.deficits(m).items() if not v < 1.0]


def bounds_named(name: str) -> Bounds:
    from runtime import quality as q

    if name == "quality":
        return Bounds(
            name,
            dict(q.PCC_FLOOR),
            {"sem_seg": q.SEMANTIC_GAIN_TOLERANCE},
            dict(q.BIAS_LIMIT),
        )
    if name == "pcc99":
        return Bounds(name, dict.fromkeys(HEADS, 0.99), {}, {})
    raise UserError(f"--bounds {name!r} is not one of quality, pcc99")


def unit_of(source: str) -> str:
    """The block a conv belongs to: backbone.stem / backbone.res3, <head>.decoder.res5, <head>.center_head."""
    parts = source.split(".")
    return ".".join(parts[:3] if len(parts) > 2 and parts[1] == "decoder" else parts[:2])


def tunable_units(graph: Graph) -> dict[str, list[str]]:
    """unit -> conv sources in it, without the first conv and the predictors (exact by policy)."""
    from passes.dtype_policy import first_convs, predictors_of

    fixed = first_convs(graph) | predictors_of(graph)
    units: dict[str, list[str]] = {}
    for n in graph.nodes:
        if is_conv(n) and n.name not in fixed:
            units.setdefault(unit_of(n.source), [])
            if n.source not in units[unit_of(n.source)]:
                units[unit_of(n.source)].append(n.source)
    return units


def overrides_for(assignment: dict[str, int], units: dict[str, list[str]]) -> Overrides:
    pins = {src: LEVELS[lvl][1] for u, lvl in assignment.items() for src in units[u]}
    return Overrides({src: o for src, o in pins.items() if o != LayerOverride()})


def _pins_yaml(o: LayerOverride) -> dict:
    return {
        f: getattr(o, f)
        for f in ("dtype", "weights_dtype", "math_fidelity", "fp32_dest_acc")
        if getattr(o, f) is not None
    }


def overrides_yaml(overrides: Overrides) -> str:
    """The precision pins of `overrides` as an overrides file (passes/overrides.py's syntax)."""
    body = {"layers": {src: _pins_yaml(o) for src, o in sorted(overrides.layers.items())}}
    return yaml.safe_dump(body, sort_keys=True)


@dataclass
class Tuner:
    """The search over one set of units, given how to cost and measure an assignment."""

    units: dict[str, list[str]]
    bounds: Bounds
    unit_ms: dict[str, list[float]]  # unit -> modeled ms of its convs per level
    measure: Callable[[dict[str, int]], list[dict[str, dict[str, float]]]]  # per checkpoint: head -> stats
    log: Callable[[str], None] = print
    # measures the search's result (at the full input size); None: `measure`
    validate: Callable[[dict[str, int]], list[dict[str, dict[str, float]]]] | None = None
    factor: dict[str, float] = field(default_factory=dict)  # constraint -> measured / predicted use

    def predicted(self, base, single, assignment) -> list[dict[str, dict[str, float]]]:
        """Additive prediction of each checkpoint's head stats for `assignment` (module docstring)."""
        out = []
        for k, b in enumerate(base):
            m = {h: dict(s) for h, s in b.items()}
            for u, lvl in assignment.items():
                if lvl == TOP:
                    continue
                s = single[(u, lvl)][k]
                for h in m:
                    m[h]["pcc"] -= max(0.0, b[h]["pcc"] - s[h]["pcc"])
                    m[h]["gain"] += s[h]["gain"] - b[h]["gain"]
                    m[h]["bias"] += s[h]["bias"] - b[h]["bias"]
            out.append(m)
        return out

    def worst(self, per_ckpt) -> float:
        """The largest predicted use of any bound's allowance (after the validation's scaling)."""
        return max(
            max((v * self.factor.get(k, 1.0) for k, v in self.bounds.deficits(m).items()), default=0.0)
            for m in per_ckpt
        )

    def run(self) -> tuple[dict[str, int], list[dict[str, dict[str, float]]]]:
        top = dict.fromkeys(self.units, TOP)
        base = self.measure(top)
        for k, m in enumerate(base):
            if self.bounds.broken(m):
                self.log(f"infeasible: every unit at {LEVELS[TOP][0]}, checkpoint {k} breaks {self.bounds.broken(m)}")
                return top, (self.validate or self.measure)(top)
        single = {}
        for u in self.units:
            for lvl in range(TOP):
                single[(u, lvl)] = self.measure({**top, u: lvl})
                worst = self.worst(single[(u, lvl)])
                self.log(
                    f"  {u:32s} {LEVELS[lvl][0]:12s} saves {self.saving(u, TOP, lvl):6.2f} ms, "
                    f"worst bound use {worst:.2f}"
                )
        for _ in range(MAX_VALIDATIONS):
            assignment = self.search(top, base, single)
            measured = (self.validate or self.measure)(assignment)
            broken = {b for m in measured for b in self.bounds.broken(m)}
            if not broken or assignment == top:
                return assignment, measured
            # The measurement (at the full size) exceeds the prediction (from the tuning size): scale that
            # constraint's predicted use up by the observed ratio, with 5% to spare, and search again.
            for m, p in zip(measured, self.predicted(base, single, assignment), strict=True):
                got, want = self.bounds.deficits(m), self.bounds.deficits(p)
                for key in broken & set(got):
                    self.factor[key] = max(self.factor.get(key, 1.0), 1.05 * got[key] / max(want[key], 1e-9))
            self.log(f"  measured {sorted(broken)}: predictions scaled by {self.factor}, searching again")
        return top, (self.validate or self.measure)(top)

    def search(self, top, base, single) -> dict[str, int]:
        """Greedy from the top level: the move saving the most time per predicted damage, while the
        prediction keeps every bound."""
        assignment = dict(top)
        while True:
            now = self.worst(self.predicted(base, single, assignment))
            moves = []
            for u, cur in assignment.items():
                for lvl in range(len(LEVELS)):
                    if lvl == cur:
                        continue
                    trial = self.worst(self.predicted(base, single, {**assignment, u: lvl}))
                    if trial < 1.0 and self.saving(u, cur, lvl) > 0:
                        moves.append((self.saving(u, cur, lvl) / max(trial - now, 1e-3), u, lvl))
            if not moves:
                return assignment
            _, u, lvl = max(moves)
            assignment[u] = lvl

    def saving(self, unit: str, cur: int, lvl: int) -> float:
        return self.unit_ms[unit][cur] - self.unit_ms[unit][lvl]


# --- the emulator and the cost model behind Tuner.measure / unit_ms ---


class Measurements:
    """Head stats of an assignment's generated module on the emulator, per checkpoint, cached on disk."""

    def __init__(self, models, digests, graphs, units, target, size, cache: Path | None, log):
        self.models, self.digests, self.graphs = models, digests, graphs
        self.units, self.target, self.size, self.cache, self.log = units, target, size, cache, log
        self.runs = 0

    def __call__(self, assignment: dict[str, int]) -> list[dict[str, dict[str, float]]]:
        from converter.atomic import write_text
        from converter.reference import reference_outputs
        from passes.pipeline import plan_graph
        from runtime.images import to_model_input
        from runtime.quality import head_stats
        from runtime.run import load_module, run_module
        from runtime.scenes import street_scene
        from runtime.weights import host_weights
        from templates.render import render_module

        overrides = overrides_for(assignment, self.units)
        image = to_model_input(street_scene(self.size[1], self.size[0], seed=0))
        out = []
        for model, digest, graph in zip(self.models, self.digests, self.graphs, strict=True):
            planned = plan_graph(graph, self.target, overrides)
            text = render_module(planned, self.target)
            key = hashlib.sha256(f"pdl-tune/{CACHE_FORMAT}\n{digest}\n{self.size}\nscene0\n{text}".encode()).hexdigest()
            path = self.cache / f"{key[:32]}.json" if self.cache else None
            if path is not None and path.is_file():
                out.append(json.loads(path.read_text()))
                continue
            with tempfile.TemporaryDirectory(prefix="pdl-tune-") as tmp:
                module_path = Path(tmp) / "module.py"
                write_text(module_path, text)
                got = run_module(load_module(module_path), host_weights(planned), image, backend="emulator").outputs
            self.runs += 1
            ref = reference_outputs(model, "panoptic_deeplab", image)
            stats = {h: vars(head_stats(got[h], ref[h])) for h in ref}
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text(path, json.dumps(stats, sort_keys=True) + "\n")
            out.append(stats)
        return out


def unit_costs(graph: Graph, units: dict[str, list[str]], target) -> dict[str, list[float]]:
    """unit -> modeled ms of its convs at each level (every unit at that level at once)."""
    from passes import cost_model
    from passes.pipeline import plan_graph

    unit = {src: u for u, sources in units.items() for src in sources}
    out: dict[str, list[float]] = {u: [] for u in units}
    for lvl in range(len(LEVELS)):
        planned = plan_graph(graph, target, overrides_for(dict.fromkeys(units, lvl), units))
        ms = dict.fromkeys(units, 0.0)
        source = {n.name: n.source for n in planned.nodes}
        for row in cost_model.evaluate(planned, target).rows:
            names = source[row.name].split(" + ")  # merged siblings: their cost shared equally
            for name in names:
                if name in unit:
                    ms[unit[name]] += row.cost.total_us / 1e3 / len(names)
        for u in units:
            out[u].append(ms[u])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except UserError as e:
        print(f"pdl-tune: error: {printable(str(e))}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    from converter.model import DEFAULT_INPUT_SIZE, parse_size

    ap = argparse.ArgumentParser(prog="pdl-tune", description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, action="append", help="checkpoint(s) to tune on (default: --seeds)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 12345], help="seeded random checkpoints")
    ap.add_argument("--bounds", default="quality", help="quality (issue #15's head bounds) or pcc99")
    ap.add_argument("--tune-size", type=parse_size, default=(128, 256), metavar="HxW")
    ap.add_argument(
        "--input-size",
        type=parse_size,
        default=DEFAULT_INPUT_SIZE,
        metavar="HxW",
        help="size the modeled costs are for (pdl-convert's)",
    )
    ap.add_argument("--target", default="blackhole-20")
    ap.add_argument("--units", nargs="+", help="tune only these units (default: every block)")
    ap.add_argument("--out", type=Path, default=Path("overrides.yaml"))
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pdl2ttnn" / "tune",
    )
    args = ap.parse_args(argv)
    bounds = bounds_named(args.bounds)
    if args.weights:
        for w in args.weights:
            if not w.is_file():
                raise UserError(f"--weights {w} is not a file; pass a Detectron2 checkpoint (.pkl or .pth)")
    return tune(args, bounds)


def tune(args, bounds: Bounds) -> int:
    import torch

    from converter.atomic import write_text
    from converter.checkpoint import load_checkpoint, write_random_checkpoint
    from converter.model import build_model, load_config, with_crop_size
    from converter.trace import trace_model
    from hardware.targets import get_target
    from passes import cost_model
    from passes.pipeline import plan_graph
    from runtime.weights import file_digest

    torch.set_num_threads(min(2, torch.get_num_threads()))
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    target = get_target(args.target)
    with tempfile.TemporaryDirectory(prefix="pdl-tune-") as tmp:
        paths = args.weights or [
            write_random_checkpoint(load_config(), Path(tmp) / f"seed{s}.pkl", seed=s) for s in args.seeds
        ]
        cfg = with_crop_size(load_config(), args.tune_size)
        models = [load_checkpoint(build_model(cfg), p) for p in paths]
        digests = [file_digest(p) for p in paths]
        full_models = models
        if args.input_size != args.tune_size:
            full_models = [load_checkpoint(build_model(with_crop_size(cfg, args.input_size)), p) for p in paths]
    graphs = [trace_model(m, "panoptic_deeplab", args.tune_size) for m in models]
    full = trace_model(
        build_model(with_crop_size(load_config(), args.input_size)).eval(), "panoptic_deeplab", args.input_size
    )
    units = tunable_units(full)
    if args.units:
        unknown = sorted(set(args.units) - set(units))
        if unknown:
            raise UserError(f"--units {', '.join(unknown)} not among the blocks: {', '.join(units)}")
        units = {u: units[u] for u in args.units}
    log(
        f"pdl-tune: {len(units)} units x {len(LEVELS)} levels, bounds {bounds.name}, tuning at "
        f"{args.tune_size[0]}x{args.tune_size[1]} on {len(models)} checkpoint(s), costs at "
        f"{args.input_size[0]}x{args.input_size[1]} on {target.name}"
    )
    measure = Measurements(models, digests, graphs, units, target, args.tune_size, args.cache, log)
    validate = measure
    if args.input_size != args.tune_size:  # the result is measured again at the size it is for
        full_graphs = [trace_model(m, "panoptic_deeplab", args.input_size) for m in full_models]
        validate = Measurements(full_models, digests, full_graphs, units, target, args.input_size, args.cache, log)
    top = dict.fromkeys(units, TOP)
    if any(bounds.broken(m) for m in measure(top)):  # no search can help: skip costing the levels
        unit_ms = dict.fromkeys(units, [0.0] * len(LEVELS))
    else:
        unit_ms = unit_costs(full, units, target)
    assignment, measured = Tuner(units, bounds, unit_ms, measure, log, validate).run()  # baseline: cached
    feasible = not any(bounds.broken(m) for m in measured)
    overrides = overrides_for(assignment, units)
    default_ms = cost_model.evaluate(plan_graph(full, target), target).total_ms
    tuned_ms = cost_model.evaluate(plan_graph(full, target, overrides), target).total_ms
    lines = [
        f"# pdl-tune, bounds {bounds.name}: {'kept' if feasible else 'NOT kept (infeasible at every level)'}; "
        f"{target.name} {args.input_size[0]}x{args.input_size[1]} modeled {tuned_ms:.2f} ms "
        f"(default precision {default_ms:.2f} ms)",
        f"# searched at {args.tune_size[0]}x{args.tune_size[1]}, measured at {args.input_size[0]}x{args.input_size[1]}"
        " on the emulator, per checkpoint (scene 0):",
    ]
    for m in measured:
        lines.append(
            "#   "
            + ", ".join(f"{h} PCC {s['pcc']:.5f} gain {s['gain']:.4f} bias {s['bias']:+.4f}" for h, s in m.items())
        )
    lines += [f"# {u}: {LEVELS[lvl][0]}" for u, lvl in assignment.items()]
    write_text(args.out, "\n".join(lines) + "\n" + overrides_yaml(overrides))
    print("\n".join(line[2:] for line in lines))
    runs = measure.runs + (validate.runs if validate is not measure else 0)
    print(f"wrote {args.out} ({len(overrides.layers)} layers; {runs} emulated forwards, the rest cached)")
    return 0 if feasible else 1


if __name__ == "__main__":
    sys.exit(main())
