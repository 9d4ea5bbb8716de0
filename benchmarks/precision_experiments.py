"""The precision experiments behind passes/dtype_policy.py's rules, reproducible: each variant of the
precision policy is planned for the anchor target (blackhole-20) at 512x1024, run on the emulator with the seeded
checkpoint,
and compared with Detectron2 fp32: PCC per head, the share of decided pixels whose semantic class agrees
(top-2 logit margin >= 0.2 std in the reference) and the modeled latency.

Usage: .venv/bin/python benchmarks/precision_experiments.py [--only NAME ...]   (about 20 s per experiment)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch
from plan_benchmark import ANCHOR_TARGET, emulated_outputs, seeded_model

from converter import model as model_lib
from converter.reference import reference_outputs
from converter.trace import trace_model
from hardware.targets import get_target
from passes import cost_model
from passes.dtype_policy import PRECISIONS, DtypeRules
from passes.fold_batchnorm import fold_batchnorm
from passes.fuse import fuse
from passes.overrides import LayerOverride, Overrides
from passes.pipeline import plan_graph
from runtime.images import to_model_input
from runtime.quality import pcc
from runtime.scenes import street_scene

LOFI = {"math_fidelity": "LoFi"}
HEADS_PREDICTORS = ("sem_seg_head.predictor", "ins_embed_head.center_predictor", "ins_embed_head.offset_predictor")
# name -> (rules, [(conv name prefixes, pinned fields)]); pins come on top of the rules
EXPERIMENTS: dict[str, tuple[DtypeRules, list[tuple[tuple[str, ...], dict]]]] = {
    "HiFi2 everywhere": (DtypeRules(lofi_modules=()), []),
    "accurate (default)": (PRECISIONS["accurate"], []),
    "+ instance ASPP LoFi": (PRECISIONS["accurate"], [(("ins_embed_head.decoder.res5",), LOFI)]),
    "+ instance decoder LoFi": (PRECISIONS["accurate"], [(("ins_embed_head.decoder",), LOFI)]),
    "+ res2 LoFi": (PRECISIONS["accurate"], [(("backbone.res2",), LOFI)]),
    "+ stem LoFi": (PRECISIONS["accurate"], [(("backbone.stem.conv2", "backbone.stem.conv3"), LOFI)]),
    "+ res4, res5 LoFi": (PRECISIONS["accurate"], [(("backbone.res4", "backbone.res5"), LOFI)]),
    "+ bf8 weights everywhere": (dataclasses.replace(PRECISIONS["accurate"], high_res_weights_dtype="bfloat8_b"), []),
    "fast": (PRECISIONS["fast"], []),
}


def pins_for(graph, pins: list[tuple[tuple[str, ...], dict]]) -> Overrides | None:
    """Per-conv pins from name prefixes (head predictors keep their own precision)."""
    layers = {}
    for prefixes, fields in pins:
        for n in graph.nodes:
            if n.op == "conv2d" and n.name.startswith(prefixes) and n.name not in HEADS_PREDICTORS:
                layers[n.name] = LayerOverride(**fields)
    return Overrides(layers) if layers else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    size = model_lib.DEFAULT_INPUT_SIZE
    model = seeded_model()
    graph = trace_model(model, "panoptic_deeplab", size)
    fused = fuse(fold_batchnorm(graph))  # pins name nodes as the planner sees them
    image = to_model_input(street_scene(size[1], size[0], seed=1))
    ref = reference_outputs(model, "panoptic_deeplab", image)
    top2 = ref["sem_seg"].topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) >= 0.2 * ref["sem_seg"].std()
    target = get_target(ANCHOR_TARGET)
    print(f"{'experiment':26s} {'ms':>7s} {'sem':>8s} {'center':>8s} {'offset':>8s} {'agree':>7s}")
    for name in args.only:
        rules, pins = EXPERIMENTS[name]
        planned = plan_graph(graph, target, pins_for(fused, pins), rules=rules)
        got = emulated_outputs(planned, image)
        scores = [pcc(got[h], ref[h]) for h in ("sem_seg", "center", "offset")]
        agree = (ref["sem_seg"].argmax(1) == got["sem_seg"].argmax(1))[decided].float().mean().item()
        print(
            f"{name:26s} {cost_model.evaluate(planned, target).total_ms:7.2f} "
            + " ".join(f"{s:8.5f}" for s in scores)
            + f" {agree:7.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
