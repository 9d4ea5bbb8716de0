"""Where the time goes: our plans against Tenstorrent's hand-written model on the same target, per stage.

Plans ours (default and `fast`) and the hand-written model's latest measured state (benchmarks/measured/
states.yaml: the last state measured on the target for the variant, planned as benchmarks/calibrate.py
plans it) and costs all three with passes/cost_model.py. Per Detectron2 stage (compiler/report.py's
stages) it prints the modeled ms of each, then the totals split into compute, data movement, reshards and
fixed time per device program, and the state's measured figure. Every number but "measured" is modeled.

Usage: .venv/bin/python benchmarks/versus_handwritten.py [--target blackhole-p150] [--variants ...]
"""

from __future__ import annotations

import argparse
import sys

import torch

from benchmarks.calibrate import load_states, plan_state
from compiler.report import build_report
from converter import model as model_lib
from converter.ir import Graph
from converter.trace import trace_model
from hardware.targets import get_target
from passes import cost_model
from passes.dtype_policy import PRECISIONS
from passes.pipeline import plan_graph


def per_stage(graph: Graph, target) -> tuple[dict[str, float], cost_model.PlanCost]:
    """Modeled ms per stage (program order, the plan report's stages) and the plan's cost."""
    stages = {s.stage: s.time_us / 1e3 for s in build_report(graph, target).stages()}
    return stages, cost_model.evaluate(graph, target)


def compare(variant: str, target_name: str) -> str:
    target = get_target(target_name)
    model = model_lib.build_model(model_lib.load_config()).eval()
    graph = trace_model(model, variant, model_lib.DEFAULT_INPUT_SIZE)
    state = [s for s in load_states() if s["target"] == target_name and variant in s["measured_ms"]][-1]
    plans = {
        "ours": plan_graph(graph, target),
        "ours fast": plan_graph(graph, target, rules=PRECISIONS["fast"]),
        f"theirs {state['commit']}": plan_state(graph, state),
    }
    costed = {k: per_stage(g, target) for k, g in plans.items()}
    stages = list(dict.fromkeys(s for per, _ in costed.values() for s in per))
    lines = [
        f"{variant} on {target_name}, modeled ms per stage",
        f"{'stage':40s}" + "".join(f"{k:>17s}" for k in plans),
    ]
    for s in stages:
        lines.append(f"{s:40s}" + "".join(f"{per.get(s, 0.0):17.3f}" for per, _ in costed.values()))
    for field in ("latency_ms", "compute_ms", "data_ms", "reshard_ms", "dispatch_ms", "device_ops"):
        lines.append(f"{field:40s}" + "".join(f"{cost.summary()[field]:17}" for _, cost in costed.values()))
    lines.append(f"{'measured (theirs)':40s}{'':34s}{state['measured_ms'][variant]:17.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="blackhole-p150")
    ap.add_argument(
        "--variants", nargs="+", default=["panoptic_deeplab", "deeplab_v3_plus"], choices=model_lib.VARIANTS
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    print("\n\n".join(compare(v, args.target) for v in args.variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
