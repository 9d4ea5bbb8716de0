"""The lowering pipeline: every pass in order, with per-pass wall time for callers.

Order: fold_batchnorm -> fuse -> pad_channels -> resample -> dtype_policy -> merge_siblings -> conv_sharding -> memory_plan ->
cost_model. Overrides
are checked against the graph after fusion (the names the plan report shows). The last step is an
analysis: it fills every OpPlan's est_time_us and dram_bytes from passes/cost_model.py, the same
model conv sharding and memory planning ranked their choices with.
"""

from __future__ import annotations

import time
from typing import Callable

from converter.ir import Graph
from passes import cost_model
from passes.conv_sharding import conv_sharding
from passes.dtype_policy import DtypeRules, dtype_policy
from passes.fold_batchnorm import fold_batchnorm
from passes.fuse import fuse
from passes.memory_plan import memory_plan
from passes.merge_siblings import merge_siblings
from passes.overrides import Overrides
from passes.pad_channels import pad_channels
from passes.resample import resample
from passes.targets import DEFAULT_L1_SMALL_SIZE, Target

PASS_ORDER = ("fold_batchnorm", "fuse", "pad_channels", "resample", "dtype_policy", "merge_siblings", "conv_sharding", "memory_plan",
              "cost_model")


def plan_graph_timed(graph: Graph, target: Target, overrides: Overrides | None = None,
                     l1_small_size: int = DEFAULT_L1_SMALL_SIZE,
                     rules: DtypeRules = DtypeRules()) -> tuple[Graph, dict[str, float]]:
    """The planned graph and the seconds each pass took (in PASS_ORDER)."""
    steps: dict[str, Callable[[Graph], Graph]] = {
        "fold_batchnorm": fold_batchnorm,
        "fuse": fuse,
        "pad_channels": pad_channels,
        "resample": lambda g: resample(g, target),
        "dtype_policy": lambda g: dtype_policy(g, rules, overrides),
        "merge_siblings": lambda g: merge_siblings(g, target, l1_small_size, overrides),
        "conv_sharding": lambda g: conv_sharding(g, target, l1_small_size, overrides),
        "memory_plan": lambda g: memory_plan(g, target, l1_small_size, overrides),
        "cost_model": lambda g: cost_model.annotate(g, target),
    }
    timings: dict[str, float] = {}
    for name in PASS_ORDER:
        start = time.perf_counter()
        graph = steps[name](graph)
        timings[name] = time.perf_counter() - start
        if name == "fuse" and overrides is not None:
            overrides.check_against(graph)
    return graph, timings


def plan_graph(graph: Graph, target: Target, overrides: Overrides | None = None,
               l1_small_size: int = DEFAULT_L1_SMALL_SIZE, rules: DtypeRules = DtypeRules()) -> Graph:
    return plan_graph_timed(graph, target, overrides, l1_small_size, rules)[0]
