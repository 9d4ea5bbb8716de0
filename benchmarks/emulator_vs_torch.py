"""Benchmark: the whole generated Panoptic-DeepLab on the host emulator vs Detectron2's PyTorch forward.

    .venv/bin/python benchmarks/emulator_vs_torch.py [--size 512 1024] [--target blackhole-20] [--threads 2]

Builds our config with seeded weights (the .pkl is cached in the temp dir), traces, plans and renders
panoptic_deeplab, then runs the reference forward and the emulated generated module on the same street
scene. Each is run twice and the second (warm) run is reported. Prints both times, their ratio
(target: emulated <= 2x reference), the emulated time per ttnn op, and PCC per head (so speed work is
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

VARIANT = "panoptic_deeplab"


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
    args = parser.parse_args(argv)
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
    graph = plan_graph(trace_model(model, VARIANT, size), get_target(args.target))
    image = to_model_input(street_scene(size[1], size[0], seed=1))
    weights = host_weights(graph)

    ref_times = []
    for _ in range(2):
        start = time.perf_counter()
        ref = reference_outputs(model, VARIANT, image)
        ref_times.append(time.perf_counter() - start)

    op_seconds: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{VARIANT}.py"
        path.write_text(render_module(graph, args.target))
        module = load_module(path)
        emu_times = []
        for run in range(2):
            patched = _time_ops(op_seconds) if run == 1 else []
            try:
                result = run_module(module, weights, image, backend="emulator")
            finally:
                for mod, name, fn in patched:
                    setattr(mod, name, fn)
            emu_times.append(result.seconds["first_run"])

    ref_t, emu_t = ref_times[1], emu_times[1]
    print(f"{VARIANT} {size[0]}x{size[1]} on {args.target}, torch threads {args.threads}")
    print(f"reference forward (Detectron2, PyTorch CPU): {ref_t:.2f} s (cold {ref_times[0]:.2f} s)")
    print(f"emulated forward (generated module):        {emu_t:.2f} s (cold {emu_times[0]:.2f} s)")
    print(f"ratio emulated / reference: {emu_t / ref_t:.2f}x (target <= 2x)")
    print("emulated time per op (warm run, incl. model build):")
    for name, sec in sorted(op_seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {name:28s} {sec:7.2f} s")
    for head in sorted(result.outputs):
        print(f"PCC {head}: {pcc(result.outputs[head], ref[head]):.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
