"""Benchmark: the whole generated Panoptic-DeepLab on the host emulator vs Detectron2's PyTorch forward.

    .venv/bin/python benchmarks/emulator_vs_torch.py [--size 512 1024] [--target blackhole-20] [--threads 2] [--runs 3]
        [--variant panoptic_deeplab]

Builds our config with seeded weights (the .pkl is cached in the temp dir), traces, plans and renders
each variant, then runs the reference forward and the emulated generated module on the same street
scene, alternately, `--runs` times each; the first run of each is cold, the fastest of the others is
reported (on a shared machine the load changes within seconds: alternating and taking the least
disturbed run keeps the ratio from measuring the neighbours). Prints both times, their ratio
(target: emulated <= 1x reference), the same for the process's CPU seconds (less sensitive to
waiting for a core), the emulated time per ttnn op (last run), and PCC per head (so speed work is
visibly numerics-neutral).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from converter.model import VARIANTS


def _model(size: tuple[int, int]):
    from converter.checkpoint import load_checkpoint, write_random_checkpoint
    from converter.model import build_model, load_config

    cfg = load_config()
    ckpt = Path(tempfile.gettempdir()) / "pdl2ttnn-bench" / "random_seed0.pkl"
    if not ckpt.is_file():
        write_random_checkpoint(cfg, ckpt)
    return load_checkpoint(build_model(load_config(input_size=size)), ckpt)


def _time_ops(op_seconds: dict[str, float]) -> list[tuple[object, str, object]]:
    """Wrap every emulated op so its wall time adds to op_seconds[name]; returns what to restore."""
    from runtime.emulator import namespace

    patched: list[tuple[object, str, object]] = []
    for module_name, names in namespace.EMULATED_BY_MODULE.items():
        module = __import__(module_name, fromlist=["_"])
        for name in names:
            fn = getattr(module, name)

            @functools.wraps(fn)
            def timed(*args, _fn=fn, _name=name, **kwargs):
                start = time.perf_counter()
                try:
                    return _fn(*args, **kwargs)
                finally:
                    op_seconds[_name] += time.perf_counter() - start

            patched.append((module, name, fn))
            setattr(module, name, timed)
    return patched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--target", default="blackhole-20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="repeatable; default: both")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating (at least 2: the first is cold)")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (the first run of each is cold)")
    torch.set_num_threads(args.threads)

    import converter.detectron2_compat as compat

    compat.install()
    from converter.reference import reference_outputs
    from converter.trace import trace_model
    from hardware.targets import get_target
    from passes.pipeline import plan_graph
    from runtime.images import to_model_input
    from runtime.quality import pcc
    from runtime.run import load_module, run_module
    from runtime.scenes import street_scene
    from runtime.weights import host_weights
    from templates.render import render_module

    size = (args.size[0], args.size[1])
    model = _model(size)
    image = to_model_input(street_scene(size[1], size[0], seed=1))
    for variant in args.variant or list(VARIANTS):
        graph = plan_graph(trace_model(model, variant, size), get_target(args.target))
        weights = host_weights(graph)
        op_seconds: dict[str, float] = defaultdict(float)
        ref_times, emu_times, ref_cpu, emu_cpu = [], [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{variant}.py"
            path.write_text(render_module(graph, args.target))
            module = load_module(path)
            for run in range(args.runs):
                start, cpu = time.perf_counter(), time.process_time()
                ref = reference_outputs(model, variant, image)
                ref_times.append(time.perf_counter() - start)
                ref_cpu.append(time.process_time() - cpu)
                patched = _time_ops(op_seconds) if run == args.runs - 1 else []
                cpu = time.process_time()
                try:
                    result = run_module(module, weights, image, backend="emulator")
                finally:
                    for mod, name, fn in patched:
                        setattr(mod, name, fn)
                emu_times.append(result.seconds["first_run"])
                emu_cpu.append(time.process_time() - cpu)

        ref_t, emu_t = min(ref_times[1:]), min(emu_times[1:])
        print(f"{variant} {size[0]}x{size[1]} on {args.target}, torch threads {args.threads}")
        print(f"reference forward (Detectron2, PyTorch CPU): {ref_t:.2f} s (runs {_seconds(ref_times)})")
        print(f"emulated forward (generated module):        {emu_t:.2f} s (runs {_seconds(emu_times)})")
        print(f"ratio emulated / reference: {emu_t / ref_t:.2f}x (target <= 1x)")
        cpu_ratio = min(emu_cpu[1:]) / min(ref_cpu[1:])
        print(f"CPU seconds, reference {_seconds(ref_cpu)}, emulated {_seconds(emu_cpu)}: ratio {cpu_ratio:.2f}x")
        print("emulated time per op (last run, incl. model build):")
        for name, sec in sorted(op_seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {name:28s} {sec:7.2f} s")
        for head in sorted(result.outputs):
            print(f"PCC {head}: {pcc(result.outputs[head], ref[head]):.6f}")
    return 0


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    raise SystemExit(main())
