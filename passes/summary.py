"""ANALYSIS: a plain-data summary of a planned graph (compiler/report.py renders it, with plots)."""

from __future__ import annotations

from dataclasses import dataclass

from converter.ir import Graph
from converter.ops import is_host
from hardware.targets import DEFAULT_L1_SMALL_SIZE, Target
from passes import cost_model
from passes.plan import OpPlan, plan_of
from passes.shards import rows_cols, tensor_bytes


@dataclass(frozen=True)
class OpRow:
    name: str
    source: str
    op: str
    sharding: str  # conv shard layout, or the output's memory layout
    slicing: str  # "L1_FULL", "DRAM_SLICE_WIDTH x4", ...; "" for ops without slicing
    output_memory: str  # "L1 HEIGHT_SHARDED", "DRAM INTERLEAVED"
    dtype: str
    weights_dtype: str
    fidelity: str
    l1_peak_per_core: int
    dram_bytes: int  # cost model: reads and writes of DRAM, moves included
    notes: tuple[str, ...]  # why each decision was taken ("pass: reason"), in pass order


@dataclass(frozen=True)
class PlanSummary:
    target: str
    budget_per_core: int
    rows: tuple[OpRow, ...]
    l1_peak_per_core: int
    activation_bytes: int
    activation_bytes_in_l1: int
    dram_bytes: int
    spills: int

    @property
    def l1_share(self) -> float:
        return self.activation_bytes_in_l1 / self.activation_bytes if self.activation_bytes else 0.0


def summarize(graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE) -> PlanSummary:
    rows, act, act_l1 = [], 0, 0
    dram = {r.name: r.cost.dram_bytes for r in cost_model.evaluate(graph, target).rows}
    for n in graph.nodes:
        p = n.plan
        if not isinstance(p, OpPlan) or p.output is None:
            raise ValueError(f"summarize needs a planned graph ({n.name} has no placement)")
        c = p.conv
        slicing = ""
        if c is not None:
            slicing = c.slice_type + (f" x{c.num_slices}" if c.num_slices else "")
        elif p.slices:
            slicing = f"{p.slices[0]} x{p.slices[1]}"
        out = p.output
        rows.append(
            OpRow(
                n.name,
                n.source,
                n.op,
                c.shard_layout if c else out.layout,
                slicing,
                f"{out.buffer} {out.layout}",
                p.dtype,
                p.weights_dtype or "",
                p.math_fidelity if c else "",
                p.l1_peak_per_core,
                dram.get(n.name, 0),
                p.notes,
            )
        )
        if not is_host(n):
            b = tensor_bytes(*rows_cols(n.out), p.dtype)
            act += b
            act_l1 += b if out.buffer == "L1" else 0
    return PlanSummary(
        target.name,
        target.l1_budget(l1_small_size),
        tuple(rows),
        max(r.l1_peak_per_core for r in rows),
        act,
        act_l1,
        sum(r.dram_bytes for r in rows),
        sum(len(plan_of(n).spill_before) for n in graph.nodes),
    )
