"""matmul of interleaved TILE tensors, as the generated resample() calls it, with the run-time checks
ttnn 0.81.1 makes for MatmulMultiCoreReuseProgramConfig; values as the matrix engine computes them.

Numerics (runtime/emulator/fidelity.py): in0 is unpacked to SrcB, in1 to SrcA; the fidelity phases
pick the operand bits multiplied; without fp32_dest_acc_en the bfloat16 Dst packs its partial sums
to the output format after every K block (in0_block_w tiles; one without a program config).
"""

from __future__ import annotations

import torch

from runtime.emulator import fidelity
from runtime.emulator.device import require_device_tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()
TILE = 32


def _products(a: torch.Tensor, b: torch.Tensor, math: fidelity.MathConfig) -> torch.Tensor:
    if math.fidelity == "HiFi4":
        return a @ b
    if math.fidelity == "HiFi2":
        return fidelity.srcb_hi(a) @ b
    b_hi = fidelity.srca_parts(b)[0]
    if math.fidelity == "LoFi":
        return fidelity.srcb_hi(a) @ b_hi
    a_hi, a_lo = fidelity.srcb_parts(a)
    return a_hi @ b + a_lo @ b_hi


def matmul(
    input_tensor_a,
    input_tensor_b,
    *,
    transpose_a=False,
    transpose_b=False,
    memory_config=None,
    dtype=None,
    program_config=None,
    activation=None,
    compute_kernel_config=None,
    core_grid=None,
    output_tile=None,
    optional_output_tensor=None,
    global_cb=None,
    sub_device_id=None,
    prefetcher_pipes=None,
):
    device = require_device_tensor("matmul", input_tensor_a, input_tensor_b)
    a, b = input_tensor_a, input_tensor_b
    if transpose_a or transpose_b or activation is not None:
        raise RuntimeError("emulator: matmul with transposes or a fused activation is not emulated")
    if a.layout != tt.TILE_LAYOUT or b.layout != tt.TILE_LAYOUT:
        raise RuntimeError("TT_FATAL: matmul: inputs must be on device and in TILE layout")
    sa, sb = tuple(a.shape), tuple(b.shape)
    if sa[-1] != sb[-2]:
        raise RuntimeError(
            f"TT_FATAL: matmul: the width of the first tensor {sa[-1]} must equal the height of the second {sb[-2]}"
        )
    block_k = TILE
    if isinstance(program_config, tt.MatmulMultiCoreReuseProgramConfig):
        nt = -(-sb[-1] // TILE)
        if program_config.per_core_N != nt:
            raise RuntimeError(
                f"TT_FATAL: N == per_core_N info: MatmulMultiCoreReuseProgramConfig: N ({nt}) must "
                f"equal per_core_N ({program_config.per_core_N})"
            )
        if sa[:-2] != sb[:-2]:
            raise RuntimeError(
                "TT_FATAL: !broadcast_batch info: MatmulMultiCoreReuseProgramConfig: Batch "
                "broadcasting is not supported for the chosen program config"
            )
        block_k = TILE * program_config.in0_block_w
    elif program_config is not None:
        raise RuntimeError(f"emulator: matmul program config {type(program_config).__name__} is not emulated")
    if compute_kernel_config is None:
        math = fidelity.MathConfig("HiFi4", False, False)
    else:
        math = fidelity.MathConfig(
            compute_kernel_config.math_fidelity.name,
            bool(compute_kernel_config.fp32_dest_acc_en),
            bool(compute_kernel_config.packer_l1_acc),
        )
    out_dtype = dtype or a.dtype

    def compute(x, y):
        x, y = x.to(torch.float32), y.to(torch.float32)
        acc = None
        for k in range(0, x.shape[-1], block_k):  # one K block at a time, packed between blocks
            part = _products(x[..., k : k + block_k], y[..., k : k + block_k, :], math)
            acc = part if acc is None else acc + part
            if not math.fp32_dest_acc:
                acc = fidelity.round_bf16(acc)
        return acc

    result = compute(a.data, b.data)
    out = device.new_tensor(result, out_dtype, tt.TILE_LAYOUT, memory_config or tt.DRAM_MEMORY_CONFIG)
    device.record_step(compute, [a, b], [out])
    return out
