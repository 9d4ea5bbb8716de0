"""The planner's per-op L1 against real ttnn's, op by op, for a generated module.

Real: runtime/ttnn_mock.check_module in NO_DISPATCH mode (program cache off) records each ttnn call's
L1 facts; the calls whose statement names a layer are that layer's op (its moves and layout
conversions are separate statements and not counted). Planned: passes/l1_sim.op_programs replays
the planned graph. Both sides give, per op, the programs its call launched with their circular
buffers and the L1 buffers the call allocated that were live while each ran (halo, temporaries,
outputs). Compared per op: `cb` (the most CB bytes of one program), `l1` (the most op-owned L1 bytes
live under one program) and `peak` (the most of both together under one program), per core.
L1_SMALL (halo and conv config tensors) is left out.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from hardware.targets import Target
from passes.l1_sim import op_programs
from runtime import ttnn_trace
from runtime.ttnn_mock import CheckResult

METRICS = ("cb", "l1", "peak")


@dataclass(frozen=True)
class OpL1:
    name: str
    kind: str  # the op kind: conv2d, max_pool2d, upsample, ...
    real: dict[str, int]  # METRICS -> bytes per core
    model: dict[str, int]

    def error(self, metric: str) -> float:
        """(model - real) / real; 0 when both are 0, inf when only real is 0."""
        real, model = self.real[metric], self.model[metric]
        if real == 0:
            return 0.0 if model == 0 else float("inf")
        return (model - real) / real


def _numbers(programs: list[tuple[int, int]]) -> dict[str, int]:
    """(CB, L1) per program -> METRICS."""
    return {
        "cb": max((cb for cb, _ in programs), default=0),
        "l1": max((l1 for _, l1 in programs), default=0),
        "peak": max((cb + l1 for cb, l1 in programs), default=0),
    }


def compare(graph, check: CheckResult, target: Target, l1_small_size: int) -> list[OpL1]:
    """Every device op of the planned `graph` that `check` (NO_DISPATCH, of the module rendered from
    it) saw, in program order."""
    events: dict[str, list] = {}
    for op in check.ops:
        events.setdefault(op.layer, []).extend(op.events)
    kinds = {n.name: n.op for n in graph.nodes}
    out = []
    for name, programs in op_programs(graph, target, l1_small_size).items():
        if name not in events:
            continue
        real = [(p["cb"], sum(p["l1"])) for p in ttnn_trace.programs(events[name])]
        out.append(OpL1(name, kinds[name], _numbers(real), _numbers([(cb, l1) for _, cb, l1, _ in programs])))
    return out


def distribution(ops: list[OpL1]) -> list[str]:
    """Per op kind and metric: ops, exact, model high / low, and the error's median and extremes."""
    lines = [
        f"{'op kind':18s} {'metric':6s} {'ops':>4s} {'exact':>5s} {'high':>4s} {'low':>4s} "
        f"{'min err':>8s} {'median':>8s} {'max err':>8s}"
    ]
    for kind in sorted({o.kind for o in ops}):
        group = [o for o in ops if o.kind == kind]
        for metric in METRICS:
            errs = [o.error(metric) for o in group]
            finite = [e for e in errs if e != float("inf")] or [0.0]
            lines.append(
                f"{kind:18s} {metric:6s} {len(group):4d} {sum(e == 0 for e in errs):5d} "
                f"{sum(e > 0 for e in errs):4d} {sum(e < 0 for e in errs):4d} {min(finite):+8.2%} "
                f"{statistics.median(finite):+8.2%} {max(errs):+8.2%}"
            )
    return lines
