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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import torch
from matplotlib.figure import Figure

from compiler.report import _RC, LayerRow, _png, _stage_bands
from converter.interpreter import run_graph
from converter.ir import Graph
from converter.ops import is_host
from hardware.targets import Target
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
        return [head, *table, f"bisect {self.variant}: {self.verdict()}"]


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
) -> Bisection:
    """Run the planned `graph` with every device op tapped on `image` with the device's `weights` and
    compare each op's output with the fp32 interpreter's (which reads the graph's own parameters)."""
    from converter.atomic import write_text
    from runtime.run import Session, load_module
    from templates.render import render_module

    graph = tapped(graph)
    variant = graph.meta.get("variant", "model")
    with tempfile.TemporaryDirectory(prefix="pdl-convert-bisect-") as tmp:
        path = Path(tmp) / f"{variant}_bisect.py"
        write_text(path, render_module(graph, target))
        with Session(load_module(path), weights, backend=backend) as session:
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
    with matplotlib.rc_context(_RC):
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
        _stage_bands(ax_pcc, [r.stage for r in layers])
        ax_err.set_xlim(-0.5, len(x) - 0.5)
        title = f"{bisection.variant} on the {bisection.backend}: each op against the fp32 interpreter"
        if first is not None:
            title += f"; first below the floor: {first.node}"
        ax_pcc.set_title(title, pad=48)
        ax_pcc.legend(loc="lower left", fontsize=8, frameon=False)
        fig.subplots_adjust(left=0.06, right=0.98, top=0.82, bottom=0.1, hspace=0.08)
        return _png(fig)


def bisect_names(variant: str) -> tuple[str, str]:
    """The bisection's files beside the plan report: its table and its plot."""
    return f"{variant}.bisect.txt", f"{variant}.bisect.png"
