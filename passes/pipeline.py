"""The lowering pipeline: every pass, in order, each with what it requires and what it ensures.

`PASSES` is the whole pipeline; nothing runs a pass that is not listed here (merge_siblings re-applies
one_dtype_per_concat and eliminate_common after each merge, to keep what they ensured). Before a
pass runs, `run_passes` checks its `requires`; after, its `ensures` (passes/contracts.py) and that
it changed only the OpPlan fields it owns (passes/plan.py): a broken contract is a compiler bug and
fails at the pass that broke it. Overrides are checked against the graph
after fusion (the names the plan report shows). The cost model (passes/cost_model.py) is an analysis
the passes and the plan report call; it is not a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from converter.ir import Graph
from hardware.targets import DEFAULT_L1_SMALL_SIZE, Target
from passes import contracts as c
from passes.contracts import Condition
from passes.conv_sharding import conv_sharding
from passes.dtype_policy import PRECISIONS, DtypeRules, dtype_policy, one_dtype_per_concat, unbias_truncation
from passes.fold_batchnorm import fold_batchnorm
from passes.fuse import fuse
from passes.layout_plan import layout_plan
from passes.memory_plan import memory_plan
from passes.merge_siblings import eliminate_common, merge_siblings
from passes.overrides import Overrides
from passes.pad_channels import pad_channels
from passes.plan import OpPlan, foreign_changes
from passes.resample import resample


@dataclass(frozen=True)
class Context:
    """What passes read besides the graph."""

    target: Target
    overrides: Overrides | None = None
    l1_small_size: int = DEFAULT_L1_SMALL_SIZE
    rules: DtypeRules = PRECISIONS["accurate"]


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Graph, Context], Graph]
    requires: tuple[Condition, ...] = ()
    ensures: tuple[Condition, ...] = ()


PASSES: tuple[Pass, ...] = (
    Pass("fold_batchnorm", lambda g, _: fold_batchnorm(g), ensures=(c.BATCHNORM_FOLDED,)),
    Pass("fuse", lambda g, _: fuse(g), requires=(c.BATCHNORM_FOLDED,), ensures=(c.RELU_FUSED,)),
    # ensures no condition of its own: it widens the predictors a bilinear upsample reads where it can
    Pass("pad_channels", lambda g, _: pad_channels(g), requires=(c.BATCHNORM_FOLDED,)),
    Pass("resample", lambda g, x: resample(g, x.target, x.overrides), requires=(c.BATCHNORM_FOLDED,)),
    Pass("dtype_policy", lambda g, x: dtype_policy(g, x.rules, x.overrides), ensures=(c.PLANNED,)),
    Pass(
        "one_dtype_per_concat",
        lambda g, _: one_dtype_per_concat(g),
        requires=(c.PLANNED,),
        ensures=(c.ONE_DTYPE_PER_CONCAT,),
    ),
    Pass(
        "eliminate_common",
        lambda g, _: eliminate_common(g),
        requires=(c.PLANNED,),
        ensures=(c.NO_COMMON_SUBEXPRESSIONS,),
    ),
    Pass(
        "merge_siblings",
        lambda g, x: merge_siblings(g, x.target, x.l1_small_size, x.overrides),
        requires=(c.PLANNED, c.ONE_DTYPE_PER_CONCAT, c.NO_COMMON_SUBEXPRESSIONS),
        ensures=(c.ONE_DTYPE_PER_CONCAT, c.NO_COMMON_SUBEXPRESSIONS),
    ),
    Pass(
        "unbias_truncation",
        lambda g, x: unbias_truncation(g) if x.rules.unbias_truncation else g,
        requires=(c.PLANNED, c.ONE_DTYPE_PER_CONCAT),
    ),
    Pass(
        "conv_sharding",
        lambda g, x: conv_sharding(g, x.target, x.l1_small_size, x.overrides),
        requires=(c.PLANNED, c.ONE_DTYPE_PER_CONCAT),
        ensures=(c.CONVS_CONFIGURED,),
    ),
    Pass("layout_plan", lambda g, _: layout_plan(g), requires=(c.CONVS_CONFIGURED,), ensures=(c.CONCAT_LAYOUTS_AGREE,)),
    Pass(
        "memory_plan",
        lambda g, x: memory_plan(g, x.target, x.l1_small_size, x.overrides),
        requires=(c.CONVS_CONFIGURED, c.CONCAT_LAYOUTS_AGREE),
        ensures=(c.PLACED,),
    ),
)
PASS_ORDER = tuple(p.name for p in PASSES)
_BY_NAME = {p.name: p for p in PASSES}


def _check_ownership(name: str, before: dict[str, OpPlan], graph: Graph) -> None:
    """A pass changes only the plan fields it owns (passes/plan.py), on the nodes it keeps."""
    for n in graph:
        old = before.get(n.name)
        if old is not None and isinstance(n.plan, OpPlan) and (bad := foreign_changes(name, old, n.plan)):
            raise c.ContractError(f"after {name}: it changed {', '.join(bad)} of {n.name}, which it does not own")


def run_passes(graph: Graph, names: Sequence[str], ctx: Context) -> tuple[Graph, dict[str, float]]:
    """`graph` through the named passes (in the given order, each checked), and the seconds each took."""
    timings: dict[str, float] = {}
    for name in names:
        p = _BY_NAME[name]
        c.check(p.requires, graph, f"before {name}")
        start = time.perf_counter()
        before = {n.name: n.plan for n in graph if isinstance(n.plan, OpPlan)}
        graph = p.run(graph, ctx)
        timings[name] = time.perf_counter() - start
        _check_ownership(name, before, graph)
        c.check(p.ensures, graph, f"after {name}")
        if name == "fuse" and ctx.overrides is not None:
            ctx.overrides.check_against(graph)
    return graph, timings


def plan_graph_timed(
    graph: Graph,
    target: Target,
    overrides: Overrides | None = None,
    l1_small_size: int = DEFAULT_L1_SMALL_SIZE,
    rules: DtypeRules = PRECISIONS["accurate"],
) -> tuple[Graph, dict[str, float]]:
    """The planned graph and the seconds each pass took (in PASS_ORDER)."""
    return run_passes(graph, PASS_ORDER, Context(target, overrides, l1_small_size, rules))


def plan_graph(
    graph: Graph,
    target: Target,
    overrides: Overrides | None = None,
    l1_small_size: int = DEFAULT_L1_SMALL_SIZE,
    rules: DtypeRules = PRECISIONS["accurate"],
) -> Graph:
    return plan_graph_timed(graph, target, overrides, l1_small_size, rules)[0]
