"""Calibration of the cost model's three unpublished constants against the device perf anchors.

For every point of a grid over MATMUL_EFFICIENCY, DEVICE_OP_US and OVERLAP_LOSS, the hand-tuned-style
plan (benchmarks/handtuned-blackhole-20.yaml) of both variants is planned again on blackhole-20 (the
planner ranks by the same model, so the constants change the plan too) and costed; the ratio to each
anchor (Tenstorrent's measured device time, plan_benchmark.ANCHOR_MS) is printed. Points are ranked by
the larger deviation of the two ratios from 1 (the issue's criterion is +-25% on both).

Usage: .venv/bin/python benchmarks/calibrate.py [--top N]   (about 5 minutes for the default grid)
"""

from __future__ import annotations

import argparse
import itertools
import sys

import torch
from plan_benchmark import ANCHOR_MS, ANCHOR_TARGET, HANDTUNED, for_graph

from converter import model as model_lib
from converter.trace import trace_model
from hardware.targets import get_target
from passes import cost_model
from passes.overrides import load_overrides
from passes.pipeline import plan_graph

EFFICIENCY = (0.18, 0.2, 0.22, 0.24)
DEVICE_OP_US = (8.0, 10.0, 12.0, 14.0)
OVERLAP_LOSS = (0.3, 0.4, 0.5)


def ratios(graphs: dict, handtuned, efficiency: float, op_us: float, overlap: float) -> dict[str, float]:
    """variant -> modeled hand-tuned latency / anchor, with the constants set to this point."""
    saved = (cost_model.MATMUL_EFFICIENCY, cost_model.DEVICE_OP_US, cost_model.OVERLAP_LOSS)
    cost_model.MATMUL_EFFICIENCY, cost_model.DEVICE_OP_US, cost_model.OVERLAP_LOSS = efficiency, op_us, overlap
    try:
        target = get_target(ANCHOR_TARGET)
        return {
            v: cost_model.evaluate(plan_graph(g, target, for_graph(handtuned, g)), target).total_ms / ANCHOR_MS[v]
            for v, g in graphs.items()
        }
    finally:
        cost_model.MATMUL_EFFICIENCY, cost_model.DEVICE_OP_US, cost_model.OVERLAP_LOSS = saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=10, help="rows to print (best first)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = model_lib.build_model(model_lib.load_config()).eval()
    graphs = {v: trace_model(model, v, model_lib.DEFAULT_INPUT_SIZE) for v in ANCHOR_MS}
    handtuned = load_overrides(HANDTUNED)
    rows = []
    for point in itertools.product(EFFICIENCY, DEVICE_OP_US, OVERLAP_LOSS):
        r = ratios(graphs, handtuned, *point)
        rows.append((max(abs(x - 1) for x in r.values()), point, r))
    rows.sort()
    print(
        f"{'efficiency':>10s} {'us/op':>6s} {'overlap':>7s} "
        + " ".join(f"{v:>17s}" for v in ANCHOR_MS)
        + "  max deviation"
    )
    for worst, (eff, op_us, overlap), r in rows[: args.top]:
        print(
            f"{eff:10.2f} {op_us:6.1f} {overlap:7.2f} "
            + " ".join(f"{r[v]:17.3f}" for v in ANCHOR_MS)
            + f"  {worst:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
