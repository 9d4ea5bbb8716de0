"""`pdl-convert --verify --bisect`: where accuracy is lost, node by node.

The planned graph is rendered again with every device op tapped (the generated module's own taps:
`taps[name] = ttnn.to_memory_config(out, DRAM)` after the op, read back with `ttnn.to_torch`, so a
device and the emulator take the same path), run once, and each node's output is compared with the
fp32 interpreter's (converter/interpreter.py) on the same planned graph: PCC, max absolute error,
gain and relative error, in program order. The first node below the floor is where accuracy is lost.
The module written to --out is the untapped one; this one lives in a temporary directory.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure

from compiler.report import PLOT_STYLE, LayerRow, png_bytes, stage_bands
from converter.interpreter import run_graph
from converter.ir import Graph
from converter.ops import is_host
from hardware.targets import Target
from passes.overrides import LayerOverride, Overrides
from runtime.quality import HeadStats, head_stats
from runtime.weights import HostTensor


@dataclass(frozen=True)
class NodeError:
    node: str
    op: str
    source: str
    stats: HeadStats  # PCC, gain, bias, max absolute error against the fp32 interpreter
    relative_error: float  # ||out - ref|| / ||ref||

    def below(self, floor: float) -> bool:
        return not self.stats.pcc >= floor  # NaN (a constant or non-finite output) counts as below


@dataclass(frozen=True)
class Bisection:
    variant: str
    backend: str
    floor: float
    rows: tuple[NodeError, ...]  # every device op, program order
    seconds: float  # the tapped forward and its read-backs (warm: after a first forward)
    untapped_seconds: float  # the same forward without taps, warm
    guidance: tuple[str, ...] = ()  # Guidance.lines() for the first op below the floor, when asked

    def cost(self) -> str:
        """What the read-backs cost (stdout only: the written table holds no times, so it is reproducible)."""
        return (
            f"bisect {self.variant}: the tapped forward with {len(self.rows)} read-backs took {self.seconds:.1f} s, "
            f"the untapped one {self.untapped_seconds:.1f} s (both after a first forward)"
        )

    @property
    def first_below(self) -> NodeError | None:
        return next((r for r in self.rows if r.below(self.floor)), None)

    def verdict(self) -> str:
        first = self.first_below
        if first is None:
            return f"no node below PCC {self.floor}"
        return (
            f"first node below PCC {self.floor}: {first.node} ({first.op}, {first.source}): "
            f"PCC {first.stats.pcc:.5f}, max|err| {first.stats.max_abs_error:.3g}, "
            f"rel. error {first.relative_error:.3g}"
        )

    def lines(self) -> list[str]:
        width, op_width = max(len(r.node) for r in self.rows), max(len(r.op) for r in self.rows)
        head = f"bisect {self.variant} on the {self.backend} against the fp32 interpreter, {len(self.rows)} device ops:"
        columns = f"{'PCC':>8} {'max|err|':>9} {'gain':>7} {'rel.err':>9}"
        table = [f"  {'#':>4}  {'node':<{width}}  {'op':<{op_width}} {columns}"]
        for i, r in enumerate(self.rows):
            s = r.stats
            mark = "  <- first below the floor" if r is self.first_below else ""
            table.append(
                f"  {i:>4}  {r.node:<{width}}  {r.op:<{op_width}} {s.pcc:>8.5f} {s.max_abs_error:>9.3g} "
                f"{s.gain:>7.4f} {r.relative_error:>9.3g}{mark}"
            )
        return [head, *table, f"bisect {self.variant}: {self.verdict()}", *self.guidance]


def tapped(graph: Graph) -> Graph:
    """The graph with every device op's output tapped (tap name = node name)."""
    return Graph(graph.nodes, graph.outputs, {**graph.meta, "taps": {n.name: n.name for n in graph if not is_host(n)}})


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    norm = ref.norm().item()
    return (out - ref).norm().item() / norm if norm > 0 else math.inf


def bisect(
    graph: Graph,
    target: Target,
    weights: dict[str, HostTensor],
    image: torch.Tensor,
    floor: float,
    backend: str | None = None,
    timed: bool = True,
) -> Bisection:
    """Run the planned `graph` with every device op tapped on `image` with the device's `weights` and
    compare each op's output with the fp32 interpreter's (which reads the graph's own parameters).
    `timed`: two untapped forwards first, to time the read-backs' cost (else one forward, no times)."""
    from converter.atomic import write_text
    from runtime.run import Session, load_module
    from templates.render import render_module

    graph = tapped(graph)
    variant = graph.meta.get("variant", "model")
    untapped = math.nan
    with tempfile.TemporaryDirectory(prefix="pdl-convert-bisect-") as tmp:
        path = Path(tmp) / f"{variant}_bisect.py"
        write_text(path, render_module(graph, target))
        with Session(load_module(path), weights, backend=backend) as session:
            if timed:
                session(image)  # first forward: programs compiled (device), weights converted (emulator)
                start = time.perf_counter()
                session(image)
                untapped = time.perf_counter() - start
            tensors: dict = {}
            start = time.perf_counter()
            session(image, taps=tensors)
            taps = session.read_taps(tensors)
            seconds = time.perf_counter() - start
    ref = run_graph(graph, image, taps=True)
    rows = []
    for n in graph:
        if is_host(n):
            continue
        got = taps[n.name]
        want = ref[n.name][:, : got.shape[1]]  # widened channels (passes/pad_channels.py) are not the model's
        rows.append(NodeError(n.name, n.op, n.source, head_stats(got, want), _relative_error(got, want)))
    return Bisection(variant, session.backend, floor, tuple(rows), seconds, untapped)


def plot_bisection(bisection: Bisection, layers: Sequence[LayerRow]) -> bytes:
    """PCC and relative error per device op along the network (the plan report's x axis and stages)."""
    assert [r.node for r in bisection.rows] == [r.plan.name for r in layers], "one row per device op"
    x = list(range(len(bisection.rows)))
    pcc = [r.stats.pcc for r in bisection.rows]
    rel = [r.relative_error for r in bisection.rows]
    first = bisection.first_below
    with matplotlib.rc_context(PLOT_STYLE):
        fig = Figure(figsize=(15, 6))
        ax_pcc, ax_err = fig.subplots(2, 1, sharex=True)
        ax_pcc.plot(x, pcc, color="#4C72B0", lw=1.2, marker=".", ms=3)
        ax_pcc.axhline(bisection.floor, color="#C44E52", ls="--", lw=1.0, label=f"floor PCC {bisection.floor}")
        ax_pcc.set_ylabel("PCC vs fp32")
        ax_err.semilogy(x, rel, color="#DD8452", lw=1.2, marker=".", ms=3)
        ax_err.set_ylabel("relative error")
        ax_err.set_xlabel("device op (program order)")
        for ax in (ax_pcc, ax_err):
            if first is not None:
                ax.axvline(bisection.rows.index(first), color="#C44E52", lw=1.0)
        stage_bands(ax_pcc, [r.stage for r in layers])
        ax_err.set_xlim(-0.5, len(x) - 0.5)
        title = f"{bisection.variant} on the {bisection.backend}: each op against the fp32 interpreter"
        if first is not None:
            title += f"; first below the floor: {first.node}"
        ax_pcc.set_title(title, pad=48)
        ax_pcc.legend(loc="lower left", fontsize=8, frameon=False)
        fig.subplots_adjust(left=0.06, right=0.98, top=0.82, bottom=0.1, hspace=0.08)
        return png_bytes(fig)


def bisect_names(variant: str) -> tuple[str, str]:
    """The bisection's files beside the plan report: its table and its plot."""
    return f"{variant}.bisect.txt", f"{variant}.bisect.png"


# --- guidance: which precision choice of the first op below the floor restores it ----------------


@dataclass(frozen=True)
class Candidate:
    pins: dict[str, str | bool]  # override fields, one step up from the op's plan (or all of them)
    pin: LayerOverride  # the op's whole override with them: the user's pins of the op, then these
    pcc: float  # the op's PCC with them (the rest of the plan as it was)
    modeled_ms: float  # the plan's modeled latency with them (passes/cost_model.py)


@dataclass(frozen=True)
class Guidance:
    variant: str
    node: str
    floor: float
    plan: str  # the op's precision choices as planned
    pcc: float  # its PCC as planned
    candidates: tuple[Candidate, ...]

    @property
    def fix(self) -> Candidate | None:
        """The candidate that restores the floor for the least modeled time."""
        fixes = [c for c in self.candidates if c.pcc >= self.floor]
        return min(fixes, key=lambda c: c.modeled_ms) if fixes else None

    def lines(self) -> list[str]:
        from compiler.tune import overrides_yaml

        fix = self.fix
        out = [f"guide {self.variant}: {self.node} as planned ({self.plan}): PCC {self.pcc:.5f}, floor {self.floor}"]
        for c in self.candidates:
            pins = ", ".join(f"{k}: {_yaml_value(v)}" for k, v in c.pins.items())
            mark = "  <- restores the floor for the least time" if c is fix else ""
            out.append(f"  {pins:<64} PCC {c.pcc:.5f}, modeled {c.modeled_ms:.2f} ms{mark}")
        if fix is None:
            return [
                *out,
                f"guide {self.variant}: no precision choice of {self.node} restores the floor: its error comes "
                "from its inputs (raise the precision of the ops before it) or from its weights",
            ]
        pin = Overrides({self.node: fix.pin})
        return [
            *out,
            f"guide {self.variant}: {self.node}'s entry for pdl-convert --overrides FILE (it replaces yours):",
            *overrides_yaml(pin).splitlines(),
        ]


def _yaml_value(v: str | bool) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


_NEXT_FIDELITY = {"LoFi": "HiFi2", "HiFi2": "HiFi4", "HiFi3": "HiFi4"}


def precision_steps(node) -> list[dict[str, str | bool]]:
    """Each precision choice of the op one step up from its plan, then all of them at the top."""
    from converter.ops import is_conv
    from passes.plan import plan_of

    p = plan_of(node)
    steps: list[dict[str, str | bool]] = []
    if p.dtype == "bfloat8_b":
        steps.append({"dtype": "bfloat16"})
    if is_conv(node):  # the dtype policy sets fidelity and accumulation for convs only
        if p.weights_dtype == "bfloat8_b":
            steps.append({"weights_dtype": "bfloat16"})
        if p.math_fidelity in _NEXT_FIDELITY:
            steps.append({"math_fidelity": _NEXT_FIDELITY[p.math_fidelity]})
        if not p.fp32_dest_acc:
            steps.append({"fp32_dest_acc": True})
    # several steps: also all of them at once (the fidelity at HiFi4), for an op no single step fixes
    top = {k: v for step in steps for k, v in step.items()} | ({"math_fidelity": "HiFi4"} if is_conv(node) else {})
    return [*steps, top] if len(steps) > 1 else steps


def guide(
    bisection: Bisection,
    planned: Graph,
    replan: Callable[[Overrides], Graph],
    base: Overrides | None,
    target: Target,
    image: torch.Tensor,
) -> Guidance | None:
    """For the first op below the floor: re-plan with each precision step of that op alone (`replan`
    plans the variant with overrides: the user's `base` plus the step), run the network again and
    measure that op; None when no op is below the floor."""
    import dataclasses

    from passes import cost_model
    from passes.plan import plan_of
    from runtime.weights import host_weights

    first = bisection.first_below
    if first is None:
        return None
    node = planned.node(first.node)
    p = plan_of(node)
    acc = _yaml_value(p.fp32_dest_acc)
    plan = f"dtype {p.dtype}, weights {p.weights_dtype}, {p.math_fidelity}, fp32 accumulation {acc}"
    layers = dict(base.layers) if base is not None else {}
    candidates = []
    for pins in precision_steps(node):
        pin = dataclasses.replace(layers.get(node.name, LayerOverride()), **pins)  # type: ignore[arg-type]
        graph = replan(Overrides({**layers, node.name: pin}))
        again = bisect(graph, target, host_weights(graph), image, bisection.floor, bisection.backend, timed=False)
        pcc = next((r.stats.pcc for r in again.rows if r.node == node.name), math.nan)
        candidates.append(Candidate(pins, pin, pcc, cost_model.evaluate(graph, target).total_ms))
    return Guidance(bisection.variant, node.name, bisection.floor, plan, first.stats.pcc, tuple(candidates))
