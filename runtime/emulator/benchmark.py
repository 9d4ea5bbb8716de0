"""Benchmark: emulated conv2d time for every conv of Panoptic-DeepLab vs the PyTorch reference forward.

    python -m runtime.emulator.benchmark [--size 512 1024] [--target blackhole-p150] [--threads 2]

Runs Detectron2's reference forward once (timed), captures each nn.Conv2d's input and parameters
with forward hooks, then runs every conv through the emulated ttnn.conv2d (bfloat16 activations,
bfloat8_b weights, fused ReLU where the module has one) and prints per-op and total times. The
target is emulated speed <= 2x the reference forward.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from runtime.emulator.allocator import DeviceMemoryError


def _capture_convs(model: nn.Module, x: torch.Tensor) -> tuple[float, list[tuple[nn.Conv2d, torch.Tensor]]]:
    from converter.reference import reference_outputs

    calls: list[tuple[nn.Conv2d, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, _out: calls.append((mod, inp[0].detach())))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    reference_outputs(model, "panoptic_deeplab", x)  # warm-up (allocator, oneDNN kernels)
    calls.clear()
    start = time.perf_counter()
    reference_outputs(model, "panoptic_deeplab", x)
    elapsed = time.perf_counter() - start
    for h in hooks:
        h.remove()
    return elapsed, calls


def _emulate(ttnn, device, conv: nn.Conv2d, x: torch.Tensor, host_weights: dict) -> tuple[float, bool]:
    n, c, h, w = x.shape
    act = getattr(conv, "activation", None)
    cfg = ttnn.Conv2dConfig(weights_dtype=ttnn.bfloat8_b,
                            activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU) if act is not None else None)
    inp = ttnn.from_torch(x.permute(0, 2, 3, 1).reshape(1, 1, n * h * w, c), dtype=ttnn.bfloat16, device=device)
    # weights become ttnn host tensors once, as the runtime does when it loads a model
    if conv not in host_weights:
        host_weights[conv] = ttnn.from_torch(conv.weight.detach(), dtype=ttnn.float32)
    weight = host_weights[conv]
    bias = None if conv.bias is None else ttnn.from_torch(conv.bias.detach().reshape(1, 1, 1, -1), dtype=ttnn.float32)
    start = time.perf_counter()
    try:
        out = ttnn.conv2d(input_tensor=inp, weight_tensor=weight, bias_tensor=bias, device=device, in_channels=c,
                      out_channels=conv.out_channels, batch_size=n, input_height=h, input_width=w,
                      kernel_size=conv.kernel_size, stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                          groups=conv.groups, conv_config=cfg)
        ttnn.deallocate(out)
        failed = False
    except DeviceMemoryError:  # the values were computed; only this unplanned config does not fit
        failed = True
    elapsed = time.perf_counter() - start
    ttnn.deallocate(inp)
    return elapsed, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--target", default="blackhole-p150")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    import converter.detectron2_compat as compat

    compat.install()
    from converter.model import build_model, example_input, load_config
    from passes.targets import get_target
    from runtime.emulator import emulated_ttnn

    size = tuple(args.size)
    model = build_model(load_config(input_size=size))
    ref_time, calls = _capture_convs(model, example_input(size))
    ttnn = emulated_ttnn(get_target(args.target))
    device = ttnn.open_device(device_id=0, l1_small_size=65536)
    host_weights: dict = {}
    first = [_emulate(ttnn, device, conv, x, host_weights) for conv, x in calls]  # includes preparing (rounding) the weights
    first_total = sum(t for t, _ in first)
    runs = [(*_emulate(ttnn, device, conv, x, host_weights), conv, x) for conv, x in calls]  # weights already prepared
    times = [(t, conv, x) for t, _, conv, x in runs]
    total = sum(t for t, _, _ in times)
    for t, conv, x in sorted(times, key=lambda r: -r[0])[:10]:
        print(f"  conv {tuple(x.shape)} -> {conv.out_channels} k{conv.kernel_size} s{conv.stride} d{conv.dilation} "
              f"g{conv.groups}: {t * 1e3:.1f} ms")
    print(f"reference forward (PyTorch CPU, {args.threads} threads): {ref_time:.2f} s")
    print(f"emulated conv2d x{len(times)}, first call (weights prepared): {first_total:.2f} s "
          f"({first_total / ref_time:.2f}x)")
    print(f"emulated conv2d x{len(times)}, later calls: {total:.2f} s  ({total / ref_time:.2f}x the reference forward); "
          f"{sum(f for _, f, _, _ in runs)} did not fit L1 with this benchmark's unplanned default configs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
