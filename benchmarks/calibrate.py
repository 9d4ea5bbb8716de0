"""Fit the cost model's calibrated constants to Tenstorrent's measured device history, and validate.

Every measured code state of the hand-written Panoptic-DeepLab (benchmarks/measured/states.yaml: commit,
target, plan file, measured sum of device kernel durations per variant) is planned as ours
(passes.pipeline.plan_graph with the state's overrides) and costed by passes/cost_model.py. A point is
(state, variant). The constants in FITTED are fitted (Nelder-Mead over their logarithms, minimising the
sum of squared log errors) on the points of the FIT_STATES only; every point's error is then reported,
each point's leave-one-out error (the constants fitted on all other points, that point predicted) and
its leave-one-state-out error (fitted without any point of its code state: a state whose effect no
other state shows cannot be predicted this way).
Plans are made once with the constants in passes/cost_model.py (the planner ranks with the model, but
most of a measured plan is pinned); `--replan` plans again with the fitted constants and reports the
errors of those plans.

`--measured CSV` (repeatable) adds a profiled run of our own generated module (`pdl-convert --profile`'s
`<variant>.ops_perf_measured.csv`, tt-metal's ops_perf_results format) as one more state (P1, P2, ...),
fitted on: our default plan of the variant its layers name, on the target of its DEVICE ARCH and worker
core count, at 512x1024, measured = the sum of its layers' device kernel durations; its per-layer table (measured
against the refitted model) follows the state table. `--states S1,S4` plans only those states.

Usage: .venv/bin/python benchmarks/calibrate.py [--replan] [--measured CSV] [--states S1,S4]
(about 5 minutes with every state; one core)
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from compiler.perf_csv import DEVICE, SIGNPOST, LayerTime, layer_times, modeled_csv
from compiler.profile import measured_vs_modeled
from converter import model as model_lib
from converter.errors import UserError
from converter.ir import Graph
from converter.trace import trace_model
from converter.untrusted import printable, read_text
from hardware.targets import TARGETS, get_target, unbounded_l1
from passes import cost_model
from passes.overrides import load_overrides
from passes.pipeline import plan_graph

HERE = Path(__file__).parent
MEASURED = HERE / "measured"
# The constants the fit sets (passes/cost_model.py), with the range it may search. The fixed time of any
# device program is bounded by what Tenstorrent publishes: device dispatch of single-digit microseconds
# (tech_reports/LLMs/llms.md section 4.6), launch skew across cores of 0.65 us (2 us traced) inside the
# kernel duration (tt-metal issue #20681). Left free, the fit states alone cannot tell it from DRAM_OP_US:
# S1, S4 and 645aa768 fit as well with 12 us per program and ~0.6 us more per DRAM program as with ~1 us
# and ~20 us (see the README's Performance section).
FITTED = {
    "MATMUL_EFFICIENCY": (0.05, 1.0),
    "DEVICE_OP_US": (0.5, 5.0),
    "DRAM_MATMUL_EFFICIENCY": (0.001, 1.0),
    "DRAM_OP_US": (0.1, 100.0),
}
# Where every fit starts: the constants before this fit (benchmarks/calibrate.py's earlier grid point), a
# DRAM-fed matmul assumed as fast as any conv. Leave-one-out fits start here too, not from the full fit,
# so a constant only the held-out points determine is not carried over from them.
PRIOR = {"MATMUL_EFFICIENCY": 0.22, "DEVICE_OP_US": 5.0, "DRAM_MATMUL_EFFICIENCY": 0.22, "DRAM_OP_US": 5.0}
# The states the constants are fitted on: the two ends of the 20-core history (1.58x apart) and one 110-core
# state, the first (Tenstorrent's 20-core plan run on 110 cores). Held out: d615fab9 (the 1.58x step),
# 6f31950c, and every later 110-core state (7cc8755a, the 1.74x step of PR #36287, and after).
FIT_STATES = ("S1", "S4", "S5-110")


@dataclass(frozen=True)
class Point:
    state: str
    commit: str
    target: str
    variant: str
    measured_ms: float
    graph: Graph  # planned


def load_states() -> list[dict]:
    return yaml.safe_load((MEASURED / "states.yaml").read_text())["states"]


def plan_state(graph: Graph, state: dict) -> Graph:
    """A measured state's program as a plan of ours (its `l1: unbounded` planned without 0.81.1's L1 limit;
    a profiled run of ours, `plan` None, is our default plan)."""
    target = get_target(state["target"])
    if state.get("l1") == "unbounded":
        target = unbounded_l1(target)
    pins = load_overrides(MEASURED / state["plan"]).restricted_to(graph) if state["plan"] is not None else None
    return plan_graph(graph, target, pins)


def _profiled_rows(path: Path) -> list[dict[str, str]]:
    text = read_text(path, "--measured")
    return list(csv.DictReader(io.StringIO(text)))


def measured_state(path: Path, index: int = 1) -> dict:
    """A profiled run of our generated module (module doc) as a state of states.yaml's form."""
    rows = _profiled_rows(path)
    devices = [r for r in rows if r.get("OP TYPE") == DEVICE]
    signposts = {r["OP CODE"] for r in rows if r.get("OP TYPE") == SIGNPOST}
    if not devices or not signposts:
        raise UserError(f"--measured {path}: no device rows or no signposts; pass pdl-convert --profile's CSV")
    arch, cores = devices[0].get("DEVICE ARCH", "").lower(), devices[0].get("AVAILABLE WORKER CORE COUNT", "")
    targets = [t.name for t in TARGETS.values() if t.num_chips == 1 and t.arch == arch and str(t.num_cores) == cores]
    if not targets:
        raise UserError(
            f"--measured {path}: no single-chip target has DEVICE ARCH {arch!r} with {cores!r} worker cores; "
            "profile on one of: " + ", ".join(t.name for t in TARGETS.values() if t.num_chips == 1)
        )
    variant = "panoptic_deeplab" if any(s.startswith("ins_embed_head.") for s in signposts) else "deeplab_v3_plus"
    return {
        "state": f"P{index}",
        "commit": "ours",
        "target": targets[0],
        "plan": None,
        "measured_csv": path,
        "measured_ms": {variant: math.nan},
    }  # measured_ms: its variant; the figure comes from measured_layers once the plan is made


def measured_layers(state: dict, graph: Graph) -> tuple[list[LayerTime], float]:
    """The profiled run's layers (checked against the plan's) and their total device kernel time in ms."""
    names = [n.name for n, _, _ in cost_model.walk(graph, get_target(state["target"]))]
    layers = layer_times(_profiled_rows(state["measured_csv"]), set(names))
    missing = [n for n in names if n not in {lt.layer for lt in layers}]
    if missing:
        raise UserError(
            f"--measured {state['measured_csv']}: {len(missing)} layers of our plan have no signpost, first "
            f"{missing[0]!r}; profile the module pdl-convert writes for this target at 512x1024"
        )
    return layers, sum(lt.kernel_ns for lt in layers) / 1e6


def plan_points(states: list[dict]) -> list[Point]:
    torch.set_num_threads(1)
    model = model_lib.build_model(model_lib.load_config()).eval()
    graphs = {v: trace_model(model, v, model_lib.DEFAULT_INPUT_SIZE) for v in model_lib.VARIANTS}
    planned: dict[tuple[str, str, bool, str], Graph] = {}  # states sharing a program are planned once
    points = []
    for s in states:
        for variant, ms in s["measured_ms"].items():
            key = (s["plan"], s["target"], s.get("l1") == "unbounded", variant)
            if key not in planned:
                planned[key] = plan_state(graphs[variant], s)
            if s["plan"] is None:  # a profiled run of ours: its figure comes from its layers
                ms = measured_layers(s, planned[key])[1]
            points.append(Point(s["state"], s["commit"], s["target"], variant, ms, planned[key]))
    return points


def current() -> dict[str, float]:
    return {k: getattr(cost_model, k) for k in FITTED}


def set_constants(values: dict[str, float]) -> None:
    for k, v in values.items():
        setattr(cost_model, k, v)


def modeled(points: list[Point], values: dict[str, float]) -> list[float]:
    saved = current()
    set_constants(values)
    try:
        return [cost_model.evaluate(p.graph, get_target(p.target)).total_ms for p in points]
    finally:
        set_constants(saved)


def _loss(points: list[Point], values: dict[str, float]) -> float:
    return sum(math.log(m / p.measured_ms) ** 2 for p, m in zip(points, modeled(points, values), strict=True))


def fit(points: list[Point], start: dict[str, float], iters: int = 200) -> dict[str, float]:
    """Nelder-Mead over the logarithms of FITTED, each clamped to its range."""
    names = list(FITTED)

    def values(x: list[float]) -> dict[str, float]:
        return {n: min(max(math.exp(v), FITTED[n][0]), FITTED[n][1]) for n, v in zip(names, x, strict=True)}

    def f(x: list[float]) -> float:
        return _loss(points, values(x))

    x0 = [math.log(start[n]) for n in names]
    simplex = [x0] + [[v + (0.5 if i == j else 0.0) for j, v in enumerate(x0)] for i in range(len(x0))]
    scored = sorted((f(x), x) for x in simplex)
    for _ in range(iters):
        (fb, best), (fw, worst) = scored[0], scored[-1]
        centroid = [sum(x[i] for _, x in scored[:-1]) / (len(scored) - 1) for i in range(len(x0))]
        refl = [c + (c - w) for c, w in zip(centroid, worst, strict=True)]
        fr = f(refl)
        if fr < fb:
            exp = [c + 2 * (c - w) for c, w in zip(centroid, worst, strict=True)]
            fe = f(exp)
            scored[-1] = (fe, exp) if fe < fr else (fr, refl)
        elif fr < scored[-2][0]:
            scored[-1] = (fr, refl)
        else:
            con = [c + 0.5 * (w - c) for c, w in zip(centroid, worst, strict=True)]
            fc = f(con)
            if fc < fw:
                scored[-1] = (fc, con)
            else:  # shrink towards the best
                scored = [(fb, best)] + [
                    (f(y), y)
                    for y in ([b + 0.5 * (v - b) for b, v in zip(best, x, strict=True)] for _, x in scored[1:])
                ]
        scored.sort(key=lambda t: t[0])
        if scored[-1][0] - scored[0][0] < 1e-5:
            break
    return values(scored[0][1])


def _err(got: float | None, p: Point) -> str:
    return "" if got is None else f"{got / p.measured_ms - 1:+.1%}"


def table(
    points: list[Point],
    values: dict[str, float],
    loo: list[float | None],
    loso: list[float | None],
    fit_states: tuple[str, ...] = FIT_STATES,
) -> str:
    got = modeled(points, values)
    lines = [
        f"{'state':7s} {'commit':9s} {'target':15s} {'variant':17s} {'measured':>9s} {'modeled':>8s} "
        f"{'error':>7s} {'LOO err':>8s} {'LOSO err':>8s}  fit"
    ]
    for p, m, lo, ls in zip(points, got, loo, loso, strict=True):
        lines.append(
            f"{p.state:7s} {p.commit:9s} {p.target:15s} {p.variant:17s} {p.measured_ms:9.2f} {m:8.2f} "
            f"{m / p.measured_ms - 1:+7.1%} {_err(lo, p):>8s} {_err(ls, p):>8s}  "
            f"{'fit' if p.state in fit_states else 'held out'}"
        )
    by = {(p.state, p.variant): m for p, m in zip(points, got, strict=True)}
    meas = {(p.state, p.variant): p.measured_ms for p in points}
    commits = {p.state: p.commit for p in points}
    for a, b in (("S1", "S2"), ("S5-110", "S6-110")):  # the two large steps: 20 cores, then 110 cores
        for v in model_lib.VARIANTS:
            if (a, v) in by and (b, v) in by:
                mod, real = by[a, v] / by[b, v], meas[a, v] / meas[b, v]
                lines.append(
                    f"speed-up {commits[a]} -> {commits[b]}, {v}: measured {real:.2f}x, modeled {mod:.2f}x "
                    f"({mod / real - 1:+.1%})"
                )
    return "\n".join(lines)


def layer_table(point: Point, values: dict[str, float], state: dict) -> list[str]:
    """A profiled run's layers against the model with `values` (compiler/profile.py's table)."""
    saved = current()
    set_constants(values)
    try:
        modeled = layer_times(csv.DictReader(io.StringIO(modeled_csv(point.graph, get_target(point.target)))))
    finally:
        set_constants(saved)
    title = f"{point.state} ({point.variant} on {point.target}), per layer against the refitted model:"
    return [title, *measured_vs_modeled(modeled, measured_layers(state, point.graph)[0])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replan", action="store_true", help="plan again with the fitted constants and report")
    ap.add_argument("--no-loo", action="store_true", help="skip the leave-one-out fits")
    ap.add_argument(
        "--measured", type=Path, action="append", default=[], metavar="CSV", help="a profiled run of ours (doc)"
    )
    ap.add_argument("--states", default=None, metavar="S1,S4", help="plan only these states of states.yaml")
    args = ap.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"calibrate: error: {printable(str(e))}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    states = load_states()
    if args.states is not None:
        wanted = args.states.split(",")
        unknown = [w for w in wanted if w not in {s["state"] for s in states}]
        if unknown:
            raise UserError(f"--states: no state {unknown[0]!r} in states.yaml; name some of: "
                            + ", ".join(s["state"] for s in states))  # fmt: skip
        states = [s for s in states if s["state"] in wanted]
    profiled = [measured_state(p, i) for i, p in enumerate(args.measured, 1)]
    for s in profiled:
        print(f"{s['state']}: our default plan profiled, {s['measured_csv']}")
    fit_states = FIT_STATES + tuple(s["state"] for s in profiled)
    points = plan_points(states + profiled)
    values = fit([p for p in points if p.state in fit_states], PRIOR)
    loo: list[float | None] = [None] * len(points)
    loso: list[float | None] = [None] * len(points)
    if not args.no_loo:
        for i, p in enumerate(points):
            loo[i] = modeled([p], fit([q for j, q in enumerate(points) if j != i], PRIOR))[0]
        for state in dict.fromkeys(p.state for p in points):
            held = [i for i, p in enumerate(points) if p.state == state]
            refit = fit([p for p in points if p.state != state], PRIOR)
            for i, m in zip(held, modeled([points[i] for i in held], refit), strict=True):
                loso[i] = m
    fitted_on = [s for s in fit_states if any(p.state == s for p in points)]
    print("fitted on " + ", ".join(fitted_on) + ": " + ", ".join(f"{k}={v:.4g}" for k, v in values.items()))
    print(table(points, values, loo, loso, fit_states))
    for run_state in profiled:
        (point,) = [p for p in points if p.state == run_state["state"]]
        print("\n".join(layer_table(point, values, run_state)))
    if args.replan:
        set_constants(values)
        replanned = plan_points(states + profiled)
        print("re-planned with the fitted constants:")
        print(table(replanned, values, [None] * len(replanned), [None] * len(replanned), fit_states))
    return 0


if __name__ == "__main__":
    sys.exit(main())
