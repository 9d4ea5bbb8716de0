"""Benchmark: modeled device latency of three plans of Panoptic-DeepLab per target, and the
`pdl-convert` stage wall times on this machine.

Plans, all costed by passes/cost_model.py:
- naive: what ttnn gives with no tuning. No BatchNorm folding, no relu fusion (separate ops),
  bfloat16 activations and weights, HiFi4 (ttnn's conv default), every tensor DRAM interleaved
  (each conv then DRAM-slices by itself: conv sharding picks the slices).
- handtuned: the hand-written tt-metal model's per-layer choices at tt-metal 76f4537d,
  benchmarks/measured/76f4537d.yaml (its 20-core choices, applied on every target); on blackhole-20 its
  modeled time is compared with what the device measured for it (ANCHOR_MS).
- ours: `passes.pipeline.plan_graph` with its defaults (precision "accurate").
- ours_fast: the same with precision "fast": the hand-tuned plan's numerics (LoFi, bfloat8_b everywhere),
  so its ratio to handtuned compares the planners alone.
For ours and ours_fast also the physical floor at their precision (cost_model.physical_floor: every conv's
FLOPs at the matrix peak on all cores, or the weights, image and outputs crossing DRAM once at nominal
bandwidth, whichever is longer) and the plan's ratio to it.
With --pcc, ours and ours_fast (naive's unfolded BatchNorm has no lowering; the hand-written plan's
AUTO slicing is costed, not rendered) on the anchor target also run on the emulator with seeded
checkpoints (seeds 0 and 12345), and their PCC per head against Detectron2 fp32 is reported, per seed
(about 15 minutes more on 2 cores).

Usage: .venv/bin/python benchmarks/plan_benchmark.py [--variants ...] [--targets ...] [--pcc] [--json PATH]
Prints a table and writes benchmarks/results.json (sorted keys). Weights conversion is not timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from converter import model as model_lib
from converter.atomic import write_text
from converter.errors import UserError
from converter.ir import Graph
from converter.ops import is_host
from converter.trace import trace_model
from hardware.targets import TARGETS, get_target
from passes import cost_model
from passes.dtype_policy import PRECISIONS, DtypeRules
from passes.overrides import LayerOverride, Overrides, load_overrides
from passes.pipeline import Context, plan_graph_timed, run_passes
from runtime.images import to_model_input
from runtime.scenes import street_scene

HERE = Path(__file__).parent
HANDTUNED = HERE / "measured" / "76f4537d.yaml"
# What the device measured for that code state (benchmarks/measured/states.yaml: sum of device kernel
# durations, batch 1, 512x1024, Blackhole 5x4 grid; Tenstorrent device perf CI, "P150 BH").
ANCHOR_MS = {"panoptic_deeplab": 30.539964, "deeplab_v3_plus": 21.926462}
ANCHOR_TARGET = "blackhole-20"
NAIVE_RULES = DtypeRules(
    activation_dtype="bfloat16",
    weights_dtype="bfloat16",
    high_res_weights_dtype="bfloat16",
    fidelity="HiFi4",
    fidelity_exact="HiFi4",
    lofi_modules=(),
    fp32_acc_min_inner_dim=1 << 30,
)


def naive_plan(graph: Graph, target) -> Graph:
    """The untuned plan (module docstring): dtype policy, conv sharding and memory planning only,
    every output pinned to DRAM but bilinear upsamples' (ttnn writes those only to L1 shards)."""
    dram = Overrides(
        {
            n.name: LayerOverride(memory="DRAM")
            for n in graph
            if not is_host(n) and not (n.op == "upsample" and n.attrs["mode"] == "bilinear")
        }
    )
    passes = ("dtype_policy", "one_dtype_per_concat", "conv_sharding", "layout_plan", "memory_plan")
    return run_passes(graph, passes, Context(target, dram, rules=NAIVE_RULES))[0]


def for_graph(overrides: Overrides, graph: Graph) -> Overrides:
    """The pins that name layers of this graph (deeplab_v3_plus has no instance head)."""
    return overrides.restricted_to(graph)


def plans(graph: Graph, target, handtuned: Overrides) -> dict[str, tuple[Graph | None, str]]:
    """plan name -> (planned graph or None, error text)."""
    makers = {
        "naive": lambda: naive_plan(graph, target),
        "handtuned": lambda: plan_graph_timed(graph, target, for_graph(handtuned, graph))[0],
        "ours": lambda: plan_graph_timed(graph, target)[0],
        "ours_fast": lambda: plan_graph_timed(graph, target, rules=PRECISIONS["fast"])[0],
    }
    out: dict[str, tuple[Graph | None, str]] = {}
    for name, make in makers.items():
        try:
            out[name] = (make(), "")
        except Exception as e:  # a plan the passes cannot build yet is reported, not fatal
            out[name] = (None, f"{type(e).__name__}: {' '.join(str(e).split())[:160]}")
    return out


def convert_timings(variant: str) -> tuple[Graph, dict[str, float]]:
    """Wall seconds of pdl-convert's stages: model build + trace, passes (each), codegen."""
    t0 = time.perf_counter()
    cfg = model_lib.load_config(None, model_lib.DEFAULT_INPUT_SIZE)
    model = model_lib.build_model(cfg).eval()
    graph = trace_model(model, variant, model_lib.DEFAULT_INPUT_SIZE)
    t_trace = time.perf_counter() - t0
    timings: dict[str, Any] = {"trace_s": round(t_trace, 3)}
    try:
        planned, per_pass = plan_graph_timed(graph, get_target(ANCHOR_TARGET))
        passes_s = round(sum(per_pass.values()), 3)
        from templates.render import render_module

        t1 = time.perf_counter()
        render_module(planned, ANCHOR_TARGET)
        codegen_s = round(time.perf_counter() - t1, 3)
        timings.update(passes_s=passes_s, codegen_s=codegen_s, total_s=round(t_trace + passes_s + codegen_s, 3))
    except Exception as e:  # pipeline or codegen not ready: report the trace time alone
        timings["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
    return graph, timings


def emulated_outputs(graph: Graph, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The heads of `graph`'s generated module run on the emulator."""
    import tempfile

    from runtime.run import load_module, run_module
    from runtime.weights import host_weights
    from templates.render import render_module

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "module.py"
        write_text(path, render_module(graph, ANCHOR_TARGET))
        return run_module(load_module(path), host_weights(graph), image, backend="emulator").outputs


def emulated_pcc(planned: dict[str, Graph], variant: str, model, image: torch.Tensor) -> dict[str, dict[str, float]]:
    """plan name -> head -> PCC of the plan's generated module on the emulator vs Detectron2 fp32."""
    from converter.reference import reference_outputs
    from runtime.quality import pcc

    ref = reference_outputs(model, variant, image)
    out = {}
    for name, graph in planned.items():
        got = emulated_outputs(graph, image)
        out[name] = {head: round(pcc(got[head], ref[head]), 5) for head in ref}
    return out


SEEDS = (0, 12345)  # the weight seeds PCC is reported for (0: the tests' checkpoint)


def seeded_model(seed: int):
    """Detectron2's model with a seeded model-zoo-format checkpoint."""
    import tempfile

    from converter.checkpoint import load_checkpoint, write_random_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = write_random_checkpoint(model_lib.load_config(), Path(tmp) / f"seed{seed}.pkl", seed=seed)
        return load_checkpoint(model_lib.build_model(model_lib.load_config()), path)


def checkpoint_model(path: Path):
    """Detectron2's model with a checkpoint of the user's (e.g. benchmarks/train_scenes.py's)."""
    from converter.checkpoint import load_checkpoint

    return load_checkpoint(model_lib.build_model(model_lib.load_config()), path)


def run(variants: list[str], targets: list[str], with_pcc: bool = False, weights: tuple[Path, ...] = ()) -> dict:
    handtuned = load_overrides(HANDTUNED)
    results: dict = {"calibration": cost_model.CALIBRATION, "variants": {}}
    models = {}
    if with_pcc:  # each model under the label its PCC columns carry
        models = {f"seed {s}": seeded_model(s) for s in SEEDS} if not weights else {}
        models.update({p.name: checkpoint_model(p) for p in weights})
    for variant in variants:
        graph, timings = convert_timings(variant)
        entry: dict = {"pdl_convert": timings, "targets": {}}
        for tname in targets:
            target = get_target(tname)
            rows: dict[str, Any] = {}
            planned = plans(graph, target, handtuned)
            for plan_name, (g, err) in planned.items():
                rows[plan_name] = cost_model.evaluate(g, target).summary() if g else {"error": err}
                if g and plan_name in ("ours", "ours_fast"):  # the floor at the precision the plan uses
                    floor = cost_model.physical_floor(g, target)
                    rows[f"{plan_name}_floor_ms"] = round(floor.ms, 3)
                    rows[f"{plan_name}_vs_floor"] = round(rows[plan_name]["latency_ms"] / floor.ms, 2)
            got: dict[str, Any] = {k: v.get("latency_ms") for k, v in rows.items() if isinstance(v, dict)}
            for ours in ("ours", "ours_fast"):
                for base in ("handtuned", "naive"):
                    if got[ours] and got[base]:
                        rows[f"{ours}_vs_{base}"] = round(got[ours] / got[base], 3)
            if tname == ANCHOR_TARGET:
                rows["handtuned_measured_ms"] = ANCHOR_MS[variant]
                for name in ("handtuned", "ours", "ours_fast"):
                    if got[name]:  # modeled over the hand-written model's measured device time
                        rows[f"{name}_vs_handtuned_measured"] = round(got[name] / ANCHOR_MS[variant], 3)
            if models and tname == ANCHOR_TARGET:
                image = to_model_input(
                    street_scene(model_lib.DEFAULT_INPUT_SIZE[1], model_lib.DEFAULT_INPUT_SIZE[0], seed=1)
                )
                for label, model in models.items():
                    # the same plans (they do not depend on weights), traced with the weights to run them;
                    # naive keeps BatchNorm, the hand-written plan has ttnn's own DRAM slicing (costed only)
                    weighted = plans(trace_model(model, variant, model_lib.DEFAULT_INPUT_SIZE), target, handtuned)
                    runnable = {k: g for k, (g, _) in weighted.items() if g and k in ("ours", "ours_fast")}
                    for plan_name, scores in emulated_pcc(runnable, variant, model, image).items():
                        rows[plan_name].setdefault("emulated_pcc", {})[label] = scores
            entry["targets"][tname] = rows
        results["variants"][variant] = entry
    return results


def table(results: dict) -> str:
    lines = [
        f"{'variant':17s} {'target':15s} {'plan':10s} {'ms':>9s} {'DRAM MB':>9s} {'L1 act':>7s} "
        f"{'L1 peak KB':>10s} {'dev ops':>7s} emulated PCC per head and weight seed (--pcc)"
    ]
    for variant, entry in results["variants"].items():
        for tname, rows in entry["targets"].items():
            for plan_name in ("naive", "handtuned", "ours", "ours_fast"):
                r = rows[plan_name]
                if "error" in r:
                    lines.append(f"{variant:17s} {tname:15s} {plan_name:10s} not planned: {r['error']}")
                    continue
                pcc = "; ".join(
                    f"{seed}: " + " ".join(f"{h} {v:.4f}" for h, v in heads.items())
                    for seed, heads in r.get("emulated_pcc", {}).items()
                )
                lines.append(
                    f"{variant:17s} {tname:15s} {plan_name:10s} {r['latency_ms']:9.2f} "
                    f"{r['dram_bytes'] / 1e6:9.1f} {r['l1_activation_share']:7.1%} "
                    f"{r['l1_peak_per_core'] / 1024:10.0f} {r['device_ops']:7d} {pcc}".rstrip()
                )
            ratios = {k: v for k, v in rows.items() if not isinstance(v, dict)}
            if ratios:
                lines.append(f"{'':17s} {tname:15s} " + ", ".join(f"{k} {v}" for k, v in sorted(ratios.items())))
        lines.append(
            f"{variant:17s} pdl-convert wall: " + ", ".join(f"{k} {v}" for k, v in entry["pdl_convert"].items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=list(model_lib.VARIANTS), choices=model_lib.VARIANTS)
    ap.add_argument(  # a mesh target plans one chip of its kind: its rows would repeat that chip's
        "--targets", nargs="+", default=[n for n, t in TARGETS.items() if t.num_chips == 1], choices=list(TARGETS)
    )
    ap.add_argument(
        "--pcc",
        action="store_true",
        help=f"also run each plan on the emulator on {ANCHOR_TARGET} and report PCC per head",
    )
    ap.add_argument(
        "--weights",
        type=Path,
        action="append",
        default=[],
        help="with --pcc: a checkpoint to run instead of the seeded ones (repeatable)",
    )
    ap.add_argument("--json", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    try:
        results = run(args.variants, args.targets, args.pcc, tuple(args.weights))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(results))
    write_text(args.json, json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
