"""Benchmark: modeled images/s of data parallel on 1, 2, 4 and 8 chips, per variant and chip kind,
eager or traced, with one or two command queues (runtime/mesh.py runs all four).

Per batch (one image per chip), in seconds:
- device: passes/cost_model.py's `evaluate` of the per-chip program at --input-size (every chip runs
  it at once, on its own image);
- host dispatch (eager only): the host time per device op of a warm forward of the per-chip program
  on the MOCK mesh (the real ttnn 0.81.1: op validation, program cache, runtime args; a mock skips
  writing the commands to the device, so a lower bound for this host, whose load it also measures),
  measured at --host-size (least of 5 forwards, least over the variants: a property of mesh and host),
  times the modeled device ops; trace replays without host dispatch;
- transfers: the input (tile-padded as the module's INPUT_LAYOUT makes it) and the outputs over PCIe at
  the stated bandwidth per link (PCIE_GBS), chips sharing the links of their system (LINKS: chips
  behind one MMIO chip share its link; the ethernet hop to them is not modeled).
One queue: input write, then compute (host dispatch overlapping the device), then output read. Two
queues: the next input's write overlaps this batch's compute. Outputs are read on queue 0 after it.

Usage: .venv/bin/python benchmarks/mesh_throughput.py [--variants ...] [--input-size HxW]
       [--host-us-per-op US] (skip the mock measurement)
Prints the table, writes docs/mesh-throughput.png and benchmarks/mesh_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from converter import model as model_lib
from converter.atomic import write_text
from converter.trace import trace_model
from hardware.targets import TARGETS, Target, get_target
from passes import cost_model
from passes.pipeline import plan_graph
from passes.plan import plan_of
from runtime.ttnn_mock import cluster_descriptor, run_child
from templates.render import render_module

ROOT = Path(__file__).resolve().parent.parent
# Effective host<->device bandwidth per PCIe link, GB/s: an ASSUMPTION (about 40% of the raw link,
# Wormhole PCIe 4.0 x16, Blackhole PCIe 5.0 x16), not measured here; --pcie-gbs overrides it.
PCIE_GBS = {"wormhole_b0": 12.0, "blackhole": 24.0}
# Systems by chip kind and chip count: (name, mesh target whose descriptor says its PCIe links).
SYSTEMS = {
    "wormhole-n150": {1: ("n150", None), 2: ("n300", "n300"), 4: ("t3k 1x4 half", "t3k"), 8: ("t3k", "t3k")},
    "blackhole-p150": {1: ("p150", None), 2: ("p300", "p300"), 4: ("quietbox-4xp150", "quietbox-4xp150")},
}
MODES = ("eager 1cq", "eager 2cq", "trace 1cq", "trace 2cq")
_HOST_PROBE = """
import json, sys, time
from pathlib import Path
import ttnn
from hardware.targets import get_target
from runtime.backend import bind
from runtime.mesh import Pipeline, open_mesh, close_mesh
from runtime.run import load_module
from runtime.ttnn_mock import placeholder_weights
import torch

module = load_module(Path(sys.argv[1]))
bind(module, ttnn)
mesh = get_target(module.TARGET).mesh
device = open_mesh(ttnn, module, mesh)
pipeline = Pipeline(ttnn, module, device, placeholder_weights(ttnn, module))
pipeline(torch.zeros((pipeline.batch_size, *module.INPUT_SHAPE[1:])))  # compiles: fills the program cache
times = []
for _ in range(5):
    start = time.perf_counter()
    out = pipeline.model.forward(pipeline.x)
    times.append(time.perf_counter() - start)
    for t in out.values():
        ttnn.deallocate(t)
close_mesh(ttnn, device, mesh)
print(json.dumps(min(times)))
"""


def pcie_links(target: Target | None) -> int:
    """Chips with their own PCIe link (MMIO) in the target's cluster descriptor (1 for one chip)."""
    if target is None:
        return 1
    with open(cluster_descriptor(target)) as f:
        return len(yaml.safe_load(f)["chips_with_mmio"])


def transfer_bytes(graph) -> tuple[int, int]:
    """Bytes per image moved to the device (the input) and back (every head), as laid out there."""

    def nbytes(node) -> int:
        plan = plan_of(node)
        if plan.layout == "TILE":
            return cost_model.tensor_bytes(node.out.shape, plan.dtype)
        n, c, h, w = node.out.shape
        return n * c * h * w * {"bfloat16": 2, "float32": 4}[plan.dtype]

    by_name = {n.name: n for n in graph}
    inputs = [n for n in graph if n.op == "input"]
    outputs = [by_name[i] for n in graph if n.op == "output" for i in n.inputs]
    return sum(map(nbytes, inputs)), sum(map(nbytes, outputs))


@dataclass(frozen=True)
class PerChip:
    device_ms: float
    device_ops: int
    bytes_in: int
    bytes_out: int


def per_chip(variant: str, chip: str, size: tuple[int, int], model) -> PerChip:
    graph = plan_graph(trace_model(model, variant, size), get_target(chip))
    cost = cost_model.evaluate(graph, get_target(chip))
    return PerChip(cost.total_ms, cost.device_ops, *transfer_bytes(graph))


def host_us_per_op(variant: str, mesh_target: str, size: tuple[int, int], model) -> float:
    """Measured: host microseconds per device op of a warm eager forward on the mock mesh."""
    target = get_target(mesh_target)
    graph = plan_graph(trace_model(model, variant, size), target)
    ops = cost_model.evaluate(graph, target).device_ops
    with tempfile.TemporaryDirectory(prefix="pdl-mesh-bench-") as tmp:
        path = Path(tmp) / f"{variant}.py"
        path.write_text(render_module(graph, target))
        probe = Path(tmp) / "probe.py"
        probe.write_text(_HOST_PROBE)
        proc = run_child(target, [str(probe), str(path)], cwd=Path(tmp), timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"host probe on the mock {mesh_target} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]) * 1e6 / ops


def images_per_s(chip: PerChip, chips: int, links: int, gbs: float, host_us: float) -> dict[str, float]:
    per_link = -(-chips // links)  # images behind the busiest link
    t_in = per_link * chip.bytes_in / (gbs * 1e9)
    t_out = per_link * chip.bytes_out / (gbs * 1e9)
    t_dev = chip.device_ms / 1e3
    t_eager = max(t_dev, chip.device_ops * host_us / 1e6)
    seconds = {
        "eager 1cq": t_in + t_eager + t_out,
        "eager 2cq": max(t_in, t_eager) + t_out,
        "trace 1cq": t_in + t_dev + t_out,
        "trace 2cq": max(t_in, t_dev) + t_out,
    }
    return {mode: chips / s for mode, s in seconds.items()}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = sorted(results)
    fig, axes = plt.subplots(1, len(variants), figsize=(6 * len(variants), 4.5), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        for chip, style in zip(SYSTEMS, ("-", "--"), strict=True):
            rows = results[variant][chip]["rows"]
            chips = [r["chips"] for r in rows]
            for mode, marker, color in zip(MODES, "o^sD", ("C0", "C1", "C2", "C3"), strict=True):
                values = [r["images_per_s"][mode] for r in rows]
                ax.plot(chips, values, style, marker=marker, color=color, label=f"{chip} {mode}")
        ax.set(title=f"{variant} (modeled)", xlabel="chips (one image each)", ylabel="images/s")
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(model_lib.VARIANTS))
    ap.add_argument("--input-size", type=model_lib.parse_size, default=model_lib.DEFAULT_INPUT_SIZE)
    ap.add_argument("--host-size", type=model_lib.parse_size, default=(128, 256), help="mock measurement size")
    ap.add_argument("--host-us-per-op", type=float, default=None, help="skip the mock measurement: use this")
    ap.add_argument("--pcie-gbs", type=float, default=None, help="effective GB/s per PCIe link (default: PCIE_GBS)")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "mesh-throughput.png")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "mesh_throughput.json")
    args = ap.parse_args(argv)
    model = model_lib.build_model(model_lib.load_config(None, args.input_size))
    small = model_lib.build_model(model_lib.with_crop_size(model_lib.load_config(), args.host_size))
    results: dict = {}
    measured: dict[str, float] = {}  # mock mesh -> host us per op
    header = f"{'variant':16s} {'chip':15s} {'chips':>5s} {'system':17s} {'links':>5s} " + " ".join(
        f"{m:>10s}" for m in MODES
    )
    lines = [header, "-" * len(header)]
    for variant in args.variants:
        results[variant] = {}
        for chip, systems in SYSTEMS.items():
            start = time.perf_counter()
            one = per_chip(variant, chip, args.input_size, model)
            gbs = args.pcie_gbs or PCIE_GBS[get_target(chip).arch]
            rows = []
            for chips, (system, mesh_target) in systems.items():
                if args.host_us_per_op is not None:
                    host_us = args.host_us_per_op
                else:  # the mock mesh of this system (a 1x4 half of a T3K: measured on the whole T3K)
                    mock = mesh_target or chip
                    if mock not in measured:  # a property of the mesh and the host: the least over the variants
                        measured[mock] = min(host_us_per_op(v, mock, args.host_size, small) for v in args.variants)
                    host_us = measured[mock]
                # a system using part of its mesh target (T3K's 1x4 half) has that part of its links
                whole = TARGETS[mesh_target].num_chips if mesh_target else 1
                links = max(pcie_links(TARGETS[mesh_target] if mesh_target else None) * chips // whole, 1)
                ips = images_per_s(one, chips, links, gbs, host_us)
                rows.append(
                    {"chips": chips, "system": system, "links": links, "host_us_per_op": round(host_us, 2)}
                    | {"images_per_s": {m: round(v, 2) for m, v in ips.items()}}
                )
                lines.append(
                    f"{variant:16s} {chip:15s} {chips:5d} {system:17s} {links:5d} "
                    + " ".join(f"{ips[m]:10.1f}" for m in MODES)
                )
            results[variant][chip] = {
                "device_ms": round(one.device_ms, 3),
                "device_ops": one.device_ops,
                "input_bytes": one.bytes_in,
                "output_bytes": one.bytes_out,
                "pcie_gbs_per_link": gbs,
                "rows": rows,
            }
            print(
                f"{variant} on {chip}: device {one.device_ms:.2f} ms/image, {one.device_ops} device ops, "
                f"input {one.bytes_in / 1e6:.1f} MB, outputs {one.bytes_out / 1e6:.1f} MB per image "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    print(f"modeled images/s at {args.input_size[0]}x{args.input_size[1]}, one image per chip")
    print("\n".join(lines))
    plot(results, args.plot)
    meta = {"input_size": list(args.input_size), "host_size": list(args.host_size), "pcie_gbs": PCIE_GBS}
    write_text(args.json, json.dumps({"meta": meta, "results": results}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.plot} and {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
