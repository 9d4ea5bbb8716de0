"""The plan report beside each generated module: `<variant>.plan.md` and three PNG plots.

    report = build_report(planned_graph, target)
    render_markdown(report)  # -> <variant>.plan.md
    render_plots(report)     # -> {"<variant>.l1.png": PNG bytes, "<variant>.dram.png": ..., ...}

It reads only the plan (`Node.plan`, passes/plan.py) and the cost model (passes/cost_model.py):
per layer the sharding, slicing, memory, dtypes, estimated L1 per core (split into live tensors
and the op's own circular buffers), DRAM bytes and modeled time; per Detectron2 stage the modeled
time. Output is deterministic: no dates or paths, fixed figure size and dpi, and PNGs without the
"Software" metadata (which names the matplotlib version), so the same plan gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from compiler.perf_csv import csv_name
from converter.ir import Graph
from converter.ops import is_conv, is_host, is_input
from hardware.targets import DEFAULT_L1_SMALL_SIZE, Target
from passes import cost_model
from passes.plan import Placement, output_of, plan_of
from passes.shards import l1_bytes_per_core, rows_cols
from passes.summary import OpRow, summarize
from runtime.ttnn_mock import CheckResult

# Detectron2 submodules whose nodes report to the head they feed (predictor convs belong to their head).
_PREDICTOR_STAGE = {"predictor": "head", "center_predictor": "center_head", "offset_predictor": "offset_head"}
_INPUT_STAGE = "pixel normalization"
_DPI = 100
PLOT_STYLE = {
    "svg.hashsalt": "pdl2ttnn",  # SVG ids would otherwise be random; PNGs carry no ids, but be explicit
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_LIVE_COLOR, _CB_COLOR, _BUDGET_COLOR = "#4C72B0", "#DD8452", "#C44E52"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class LayerRow:
    index: int  # position among the device ops (x axis of the plots)
    stage: str  # Detectron2 stage, e.g. "backbone.res3", "sem_seg_head.decoder.res5"
    plan: OpRow  # sharding, slicing, memory, dtypes and L1 peak from passes/summary.py
    l1_live_per_core: int  # live tensors in L1 while the op runs (inputs after moves + output)
    time_us: float  # cost model
    dram_bytes: int  # cost model (reshards and spills included)
    l1_real_per_core: int | None = None  # real ttnn's peak for the op and its moves (None: not checked)
    l1_real_recorded: bool = True  # False: checked, but its circular buffers were not recorded (real_peaks)

    @property
    def l1_transient_per_core(self) -> int:
        """The rest of the op's peak: its circular buffers, halo and move copies."""
        return max(0, self.plan.l1_peak_per_core - self.l1_live_per_core)


@dataclass(frozen=True)
class StageRow:
    stage: str
    ops: int
    convs: int
    time_us: float
    dram_bytes: int


@dataclass(frozen=True)
class PlanReport:
    variant: str
    target: str
    input_size: tuple[int, int]
    config: str
    budget_per_core: int
    layers: tuple[LayerRow, ...]  # device ops in program order (no input/output nodes)
    nodes: int
    convs: int
    l1_peak_per_core: int
    activation_bytes: int
    activation_bytes_in_l1: int
    spills: int
    cost: dict[str, float | int | str]  # cost_model.PlanCost.summary()
    real_ttnn: str = "real ttnn: not checked"  # the verdict of runtime/ttnn_mock.py on this module

    @property
    def latency_ms(self) -> float:
        return float(self.cost["latency_ms"])

    @property
    def dram_bytes(self) -> int:
        return sum(r.dram_bytes for r in self.layers)

    def stages(self) -> tuple[StageRow, ...]:
        """Per-stage totals, stages in program order of their first op."""
        order: dict[str, list[LayerRow]] = {}
        for r in self.layers:
            order.setdefault(r.stage, []).append(r)
        return tuple(
            StageRow(
                s,
                len(rs),
                sum(is_conv(r.plan.op) for r in rs),
                sum(r.time_us for r in rs),
                sum(r.dram_bytes for r in rs),
            )
            for s, rs in order.items()
        )


def stage_of(source: str) -> str | None:
    """The Detectron2 stage of a module path; None for a bare head (its ops join the stage before). An op
    merged from several modules ("a + b", passes/merge_siblings.py) belongs to their stages joined."""
    if " + " in source:
        stages = [stage_of(part) for part in source.split(" + ")]
        return " + ".join(dict.fromkeys(s for s in stages if s)) or None
    if not source:
        return _INPUT_STAGE
    parts = source.split(".")
    if parts[0] == "backbone" or len(parts) < 2:
        return ".".join(parts[:2]) if len(parts) >= 2 else None
    if parts[1] == "decoder":
        return ".".join(parts[:3])
    return f"{parts[0]}.{_PREDICTOR_STAGE.get(parts[1], parts[1])}"


def _live_l1(graph: Graph, target: Target) -> dict[str, int]:
    """Per device op: L1 bytes per core of the tensors live while it runs, replaying the plan's moves."""
    nodes = {n.name: n for n in graph}

    def l1(name: str, p: Placement) -> int:
        n = nodes[name]
        return l1_bytes_per_core(p, *rows_cols(n.out), plan_of(n).dtype, target)

    where: dict[str, Placement] = {}
    out: dict[str, int] = {}
    for n in graph:
        p = plan_of(n)
        for name, dst in p.spill_before + p.reshard_inputs:
            where[name] = dst
        if not is_host(n):
            out[n.name] = sum(l1(x, q) for x, q in where.items()) + l1(n.name, output_of(n))
        where[n.name] = output_of(n)
        for name in p.deallocate_after:
            where.pop(name, None)
    return out


def real_peaks(check: CheckResult, names: set[str]) -> dict[str, int | None]:
    """Real ttnn's peak per planned op: each ttnn call joins the layer its statement names; the
    moves and reallocations before an op (statements naming no layer) join that op. None where the
    capture recorded no circular buffers for a conv (a program-cache hit: an identical earlier conv built
    the program; or a 1x1 conv run as a matmul, whose dataflow buffers NORMAL capture does not record):
    that figure would leave out what the plan's peak counts."""
    peaks: dict[str, int | None] = {}
    pending = 0
    for op in check.ops:
        if op.op == "deallocate":  # (recorded for the frees it makes; it needs nothing)
            continue
        if op.layer in names:
            if op.op == "conv2d" and op.cb_per_core == 0:
                peaks[op.layer] = None
            elif op.layer not in peaks or peaks[op.layer] is not None:
                peaks[op.layer] = max(peaks.get(op.layer) or 0, pending, op.total_peak)
            pending = 0
        else:
            pending = max(pending, op.total_peak)
    return peaks


def build_report(
    graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE, check: CheckResult | None = None
) -> PlanReport:
    """The report data of a planned graph (every node carries its OpPlan), with real ttnn's verdict
    and per-op peaks when the module was checked (runtime/ttnn_mock.py)."""
    real = real_peaks(check, {n.name for n in graph}) if check is not None else {}
    summary = summarize(graph, target, l1_small_size)
    cost = cost_model.evaluate(graph, target)
    costs = {r.name: r.cost for r in cost.rows}
    live = _live_l1(graph, target)
    plan_rows = {r.name: r for r in summary.rows}
    layers: list[LayerRow] = []
    stage = _INPUT_STAGE
    for n in graph:
        if is_host(n):
            continue
        stage = stage_of(n.source) or stage
        c = costs[n.name]
        layers.append(
            LayerRow(
                len(layers),
                stage,
                plan_rows[n.name],
                live[n.name],
                c.total_us,
                c.dram_bytes,
                real.get(n.name),
                n.name not in real or real[n.name] is not None,
            )
        )
    image = next(n for n in graph if is_input(n)).out.shape  # 1x3xHxW
    return PlanReport(
        variant=graph.meta.get("variant", ""),
        target=target.name,
        input_size=(image[2], image[3]),
        config=graph.meta.get("config", ""),
        budget_per_core=summary.budget_per_core,
        layers=tuple(layers),
        nodes=len(graph),
        convs=sum(is_conv(n) for n in graph),
        l1_peak_per_core=summary.l1_peak_per_core,
        activation_bytes=summary.activation_bytes,
        activation_bytes_in_l1=summary.activation_bytes_in_l1,
        spills=summary.spills,
        cost=cost.summary(),
        real_ttnn=check.verdict() if check is not None else "real ttnn: not checked",
    )


# --- plots -------------------------------------------------------------------------------------


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def short_stage(stage: str) -> str:
    """A few characters per stage for labels above the plots ("res3", "sem ASPP", "ins center")."""
    if stage == _INPUT_STAGE:
        return "norm"
    head, _, rest = stage.partition(".")
    prefix = {"backbone": "", "sem_seg_head": "sem ", "ins_embed_head": "ins "}.get(head, head + " ")
    rest = {
        "decoder.res5": "ASPP",
        "decoder.res3": "dec res3",
        "decoder.res2": "dec res2",
        "center_head": "center",
        "offset_head": "offset",
    }.get(rest, rest)
    return prefix + rest


def stage_bands(ax, stages: Sequence[str]) -> None:
    """Alternate grey bands per stage (one entry per op) with the stage's short name on top, so ops can
    be located."""
    starts = [i for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]]
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(stages)
        if k % 2:
            ax.axvspan(start - 0.5, end - 0.5, color="#000000", alpha=0.06, lw=0)
        ax.text(
            (start + end - 1) / 2,
            1.01,
            short_stage(stages[start]),
            transform=ax.get_xaxis_transform(),
            rotation=45,
            ha="left",
            va="bottom",
            fontsize=8,
        )
    ax.set_xlim(-0.5, len(stages) - 0.5)


def plot_l1(report: PlanReport) -> bytes:
    """L1 per core over the program: live tensors + the op's circular buffers, against the budget."""
    layers = report.layers
    x = [r.index for r in layers]
    live = [r.l1_live_per_core / _MIB for r in layers]
    cbs = [r.l1_transient_per_core / _MIB for r in layers]
    with matplotlib.rc_context(PLOT_STYLE):
        fig = Figure(figsize=(12, 5))
        ax = fig.add_subplot()
        ax.bar(x, live, width=1.0, color=_LIVE_COLOR, label="live tensors (inputs, output, kept activations)")
        ax.bar(
            x,
            cbs,
            width=1.0,
            bottom=live,
            color=_CB_COLOR,
            label="op working set (circular buffers, halo, move copies)",
        )
        budget = report.budget_per_core / _MIB
        ax.axhline(budget, color=_BUDGET_COLOR, ls="--", lw=1.2, label=f"planner budget {budget:.2f} MiB")
        stage_bands(ax, [r.stage for r in layers])
        ax.set_ylim(0, budget * 1.12)
        ax.set_xlabel("device op (program order)")
        ax.set_ylabel("L1 per core (MiB)")
        ax.set_title(f"{report.variant} on {report.target}: L1 per core over the program", pad=48)
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.subplots_adjust(left=0.06, right=0.96, top=0.82, bottom=0.17)
        return png_bytes(fig)


def plot_dram(report: PlanReport) -> bytes:
    """DRAM bytes each op reads and writes (reshards and spills included); the largest are named."""
    layers = report.layers
    mb = [r.dram_bytes / 1e6 for r in layers]
    with matplotlib.rc_context(PLOT_STYLE):
        fig = Figure(figsize=(15, 5))
        ax = fig.add_subplot()
        colors = [_LIVE_COLOR if is_conv(r.plan.op) else "#8C8C8C" for r in layers]
        ax.bar([r.index for r in layers], mb, width=0.8, color=colors)
        top = sorted(layers, key=lambda r: (-r.dram_bytes, r.index))[:8]
        for rank, r in enumerate(top, 1):
            ax.text(r.index, r.dram_bytes / 1e6, str(rank), ha="center", va="bottom", fontsize=7)
        fig.text(
            0.755,
            0.80,
            "largest DRAM traffic\n"
            + "\n".join(f"{rank}. {r.plan.name}  {r.dram_bytes / 1e6:.1f} MB" for rank, r in enumerate(top, 1)),
            va="top",
            ha="left",
            fontsize=7.5,
            family="DejaVu Sans Mono",
            linespacing=1.5,
        )
        stage_bands(ax, [r.stage for r in layers])
        ax.set_ylim(0, max(mb + [1e-3]) * 1.15)
        ax.set_xlabel("device op (program order); blue: conv2d, grey: other ops")
        ax.set_ylabel("DRAM traffic (MB)")
        ax.set_title(
            f"{report.variant} on {report.target}: DRAM traffic per layer, total {report.dram_bytes / 1e6:.1f} MB",
            pad=48,
        )
        fig.subplots_adjust(left=0.05, right=0.74, top=0.80, bottom=0.10)
        return png_bytes(fig)


def plot_stages(report: PlanReport) -> bytes:
    """Modeled device time per Detectron2 stage, in program order top to bottom."""
    stages = report.stages()
    total_ms = sum(s.time_us for s in stages) / 1e3
    with matplotlib.rc_context(PLOT_STYLE):
        fig = Figure(figsize=(9, 0.9 + 0.32 * len(stages)))
        ax = fig.add_subplot()
        y = list(range(len(stages)))[::-1]
        ms = [s.time_us / 1e3 for s in stages]
        ax.barh(y, ms, color=_LIVE_COLOR, height=0.7)
        for yi, v in zip(y, ms, strict=True):
            ax.text(v, yi, f" {v:.2f} ms ({100 * v / total_ms:.0f}%)", va="center", fontsize=8)
        ax.set_yticks(y, [s.stage for s in stages])
        ax.set_xlim(0, max(ms + [1e-3]) * 1.25)
        ax.set_xlabel("modeled device time (ms)")
        ax.set_title(f"{report.variant} on {report.target}: modeled time per stage, total {total_ms:.2f} ms")
        fig.subplots_adjust(left=0.32, right=0.98, top=1 - 0.45 / fig.get_figheight(), bottom=0.5 / fig.get_figheight())
        return png_bytes(fig)


PLOTS = {"l1": plot_l1, "dram": plot_dram, "stages": plot_stages}
_PLOT_TITLES = {
    "l1": "L1 per core over the program",
    "dram": "DRAM traffic per layer",
    "stages": "Modeled time per Detectron2 stage",
}


def plot_names(variant: str) -> dict[str, str]:
    return {key: f"{variant}.{key}.png" for key in PLOTS}


# --- markdown ----------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows
    ]


def render_markdown(report: PlanReport) -> str:
    c = report.cost
    h, w = report.input_size
    lines = [
        f"# {report.variant} on {report.target}: plan report",
        "",
        f"Input 1x3x{h}x{w}, config `{report.config}`; {report.nodes} nodes, {report.convs} convs, "
        f"{len(report.layers)} device ops ({c['device_ops']} device programs). Times are the cost model's "
        "(passes/cost_model.py), not measurements.",
        "",
        f"- modeled latency: {report.latency_ms:.3f} ms (compute {c['compute_ms']} ms, data movement "
        f"{c['data_ms']} ms, reshards {c['reshard_ms']} ms, dispatch {c['dispatch_ms']} ms)",
        f"- L1 peak per core: {report.l1_peak_per_core} B of {report.budget_per_core} B budget "
        f"({100 * report.l1_peak_per_core / report.budget_per_core:.1f}%)",
        f"- activation bytes kept in L1: {report.activation_bytes_in_l1} of {report.activation_bytes} "
        f"({100 * report.activation_bytes_in_l1 / max(report.activation_bytes, 1):.1f}%)",
        f"- DRAM traffic: {report.dram_bytes} B; spills to DRAM: {report.spills}",
        f"- {report.real_ttnn} (ttnn 0.81.1 on a mock device, NORMAL graph capture)",
        f"- modeled time per op in tt-metal's profiler CSV format, for `tt-perf-report --ignore-signposts`: "
        f"[{csv_name(report.variant)}]({csv_name(report.variant)})",
        "",
    ]
    for key, name in plot_names(report.variant).items():
        lines += [f"## {_PLOT_TITLES[key]}", "", f"![{_PLOT_TITLES[key]}]({name})", ""]
    lines += ["## Modeled time per stage", ""]
    total = sum(s.time_us for s in report.stages()) or 1.0
    lines += _table(
        ("stage", "ops", "convs", "time (ms)", "share", "DRAM (MB)"),
        [
            (
                s.stage,
                s.ops,
                s.convs,
                f"{s.time_us / 1e3:.3f}",
                f"{100 * s.time_us / total:.1f}%",
                f"{s.dram_bytes / 1e6:.1f}",
            )
            for s in report.stages()
        ],
    )
    lines += [
        "",
        "## Layers",
        "",
        "L1 columns are bytes per core: live tensors while the op runs, the op's own working set "
        "(circular buffers, halo, move copies), and their sum, the peak the planner checked against "
        'the budget; "L1 real" is real ttnn\'s peak for the op and its moves (live buffers and its '
        'own allocations, L1 and L1_SMALL), to compare with "L1 peak"; "-" where the program was not checked '
        'or stopped before, "n/r" where the capture recorded no circular buffers for the conv (a program '
        "built for an identical earlier conv and taken from ttnn's program cache, or a 1x1 conv run as a "
        "matmul, whose dataflow buffers NORMAL graph capture does not record).",
        "",
    ]
    lines += _table(
        (
            "#",
            "name",
            "source",
            "op",
            "sharding",
            "slicing",
            "output",
            "dtype",
            "weights",
            "fidelity",
            "L1 live",
            "L1 CBs",
            "L1 peak",
            "L1 real",
            "DRAM bytes",
            "time (us)",
        ),
        [
            (
                r.index,
                r.plan.name,
                r.plan.source,
                r.plan.op,
                r.plan.sharding,
                r.plan.slicing,
                r.plan.output_memory,
                r.plan.dtype,
                r.plan.weights_dtype,
                r.plan.fidelity,
                r.l1_live_per_core,
                r.l1_transient_per_core,
                r.plan.l1_peak_per_core,
                "n/r" if not r.l1_real_recorded else "-" if r.l1_real_per_core is None else r.l1_real_per_core,
                r.dram_bytes,
                f"{r.time_us:.1f}",
            )
            for r in report.layers
        ],
    )
    lines += ["", "## Why each decision", "", "Each pass's reason, in pass order (dtype, conv, memory).", ""]
    lines += [f"- `{r.plan.name}`: " + "; ".join(r.plan.notes) for r in report.layers if r.plan.notes]
    return "\n".join(lines) + "\n"


def render_plots(report: PlanReport) -> dict[str, bytes]:
    """The report's PNGs by file name (the names `render_markdown` links)."""
    return {name: PLOTS[key](report) for key, name in plot_names(report.variant).items()}
