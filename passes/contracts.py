"""ANALYSIS: the facts passes require and ensure, each a check of a graph (torch.fx's requires/ensures).

A pass module states `REQUIRES` and `ENSURES` as tuples of these conditions; passes/pipeline.py checks
them before and after every pass, so a pass run out of order, or one that breaks what a later pass
relies on, fails at once with the condition and the first offending nodes, not three passes later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from converter.ir import Graph, Node
from converter.ops import Memory, Writes, is_conv, is_host, op_kind
from passes.plan import OpPlan, stored_dtype


@dataclass(frozen=True)
class Condition:
    name: str
    offenders: Callable[[Graph], list[str]]  # the nodes that break it, in program order


class ContractError(AssertionError):
    """A pass ran without what it requires, or did not ensure what it promises (a compiler bug)."""


def _only_reader(graph: Graph, reader: str) -> Callable[[Node], bool]:
    users, heads = graph.users(), set(graph.outputs.values())
    return lambda n: users[n.name] == [reader] and n.name not in heads


def _unfolded_batchnorms(graph: Graph) -> list[str]:
    by_name = {n.name: n for n in graph}
    return [
        n.name
        for n in graph
        if n.op == "batch_norm"
        and by_name[n.inputs[0]].op == "conv2d"
        and _only_reader(graph, n.name)(by_name[n.inputs[0]])
    ]


def _unfused_relus(graph: Graph) -> list[str]:
    by_name = {n.name: n for n in graph}
    out = []
    for n in graph:
        host = by_name[n.inputs[0]] if n.op == "relu" else None
        if (
            host
            and "activation" in op_kind(host).attrs
            and host.attrs["activation"] is None
            and _only_reader(graph, n.name)(host)
        ):
            out.append(n.name)
    return out


def _unplanned(graph: Graph) -> list[str]:
    return [n.name for n in graph if not isinstance(n.plan, OpPlan)]


def _mixed_dtype_concats(graph: Graph) -> list[str]:
    by_name = {n.name: n for n in graph}
    return [
        n.name
        for n in graph
        if op_kind(n).memory is Memory.CONCAT and len({stored_dtype(i, by_name) for i in n.inputs}) > 1
    ]


def cse_key(n: Node) -> tuple:
    """What makes two parameterless nodes the same computation: op, inputs, attributes, precision."""
    p = n.plan if isinstance(n.plan, OpPlan) else None
    precision = (p.dtype, p.weights_dtype, p.math_fidelity, p.fp32_dest_acc) if p else None
    return (n.op, n.inputs, tuple(sorted(n.attrs.items())), precision)


def _repeated(graph: Graph) -> list[str]:
    seen: set[tuple] = set()
    out = []
    for n in graph:
        if n.params or is_host(n):
            continue
        k = cse_key(n)
        if k in seen:
            out.append(n.name)
        seen.add(k)
    return out


def _unconfigured_convs(graph: Graph) -> list[str]:
    return [n.name for n in graph if is_conv(n) and (not isinstance(n.plan, OpPlan) or n.plan.conv is None)]


def _unconverted_reads(graph: Graph) -> list[str]:
    """Concat inputs in a layout other than the one the concat reads, with no conversion planned."""
    layout = {n.name: n.plan.layout for n in graph if isinstance(n.plan, OpPlan)}
    out = []
    for n in graph:
        if op_kind(n).writes is not Writes.AS_READ or not isinstance(n.plan, OpPlan):
            continue
        converted = dict(n.plan.layout_inputs)
        if len({converted.get(i, layout.get(i)) for i in n.inputs}) > 1:
            out.append(n.name)
    return out


def _unplaced(graph: Graph) -> list[str]:
    return [n.name for n in graph if not isinstance(n.plan, OpPlan) or n.plan.output is None]


BATCHNORM_FOLDED = Condition("every batch_norm that alone reads a conv is folded into it", _unfolded_batchnorms)
RELU_FUSED = Condition("every relu that alone reads a conv or add is its activation", _unfused_relus)
PLANNED = Condition("every node has an OpPlan (dtype, fidelity)", _unplanned)
ONE_DTYPE_PER_CONCAT = Condition("every concat's inputs are stored in one dtype", _mixed_dtype_concats)
NO_COMMON_SUBEXPRESSIONS = Condition("no parameterless node repeats an earlier one", _repeated)
CONVS_CONFIGURED = Condition("every conv2d has a ConvConfig", _unconfigured_convs)
CONCAT_LAYOUTS_AGREE = Condition("every concat reads one layout (conversions planned)", _unconverted_reads)
PLACED = Condition("every node has an output placement", _unplaced)


def check(conditions: tuple[Condition, ...], graph: Graph, when: str) -> None:
    for c in conditions:
        bad = c.offenders(graph)
        if bad:
            more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
            raise ContractError(f"{when}: '{c.name}' does not hold: {', '.join(bad[:3])}{more}")
