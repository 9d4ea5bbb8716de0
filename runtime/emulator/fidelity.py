"""Tensix matrix-engine numerics for conv2d on the host: math-fidelity phases and Dst accumulation.

What the hardware does (sources: tenstorrent/tt-isa-documentation WormholeB0/TensixTile/TensixCoprocessor
MVMUL.md, SrcASrcB.md "Fidelity phases", MatrixUnit.md `SrcAFidelityBits`/`SrcBFidelityBits`, Dst.md;
tenstorrent/tt-metal tech_reports/matrix_engine/matrix_engine.md; tt-llk llk_unpack_AB_matmul.h,
llk_math_matmul.h; ttnn conv2d_utils.cpp, conv2d program factories):
- MVMUL computes Dst[8x16] += SrcB[8x16] @ SrcA[16x16]. A matmul's in0 (the activations) is unpacked to
  SrcB and in1 (the weights) to SrcA. Src registers hold 19-bit data; bfloat16 and bfloat8_b unpack
  losslessly to BF16 (sign, 8-bit exponent, 7-bit mantissa).
- The multipliers take 5 bits of SrcA (hidden bit + 4) and 7 bits of SrcB (hidden bit + 6) per phase:
  phase 0 = A_hi*B_hi, 1 = A_lo*B_hi, 2 = A_hi*B_lo, 3 = A_lo*B_lo, where A_hi keeps sign, exponent and
  the top 4 mantissa bits (float32 mask 0xfff80000), A_lo the next 5 (3 for BF16), B_hi the top 6
  (mask 0xfffe0000), B_lo the next 4 (1 for BF16). LoFi runs phase 0, HiFi2 phases 0-1, HiFi3 0-2,
  HiFi4 all four. So with BF16 operands: LoFi = W_hi*X_hi, HiFi2 = W*X_hi (weights exact, activations
  lose their last mantissa bit), HiFi3 = W*X_hi + W_hi*X_lo, HiFi4 = W*X exact.
- Dst is BF16 (16-bit rows) unless fp32_dest_acc_en, then FP32. Every MVMUL (16 K values) of every
  phase adds its product into Dst, so a BF16 Dst rounds the running sum after each 16-deep chunk.
  Between K blocks the conv packs partials to its intermediate CB, whose format is FP32/BF16 with
  packer_l1_acc (fp32_dest_acc_en decides which) and the output format without it.

What is modelled here (cheapest exact decomposition: the phase sum is bilinear, so it folds into one
product per activation part):
- LoFi: conv(X_hi, W_hi); HiFi2: conv(X_hi, W); HiFi4: conv(X, W); HiFi3: conv(X_hi, W) + conv(X_lo, W_hi),
  run as ONE conv over the channel-concatenated operands [X_hi | X_lo] and [W | W_hi].
- BF16 Dst: rounding to bf16 after each K block (one kernel row, the height-sharded conv's act block:
  kw*C_in values), not after each 16-deep MVMUL of each phase. The finer roundings are not emulated
  (they would cost K/16 passes over the output per phase); so bf16-accumulation error is UNDER-estimated
  for deep kernel rows (e.g. 1x1 convs with 2048 inputs round once here, 128x per phase on the device),
  and the low-phase products are summed before rounding instead of into an already-rounded Dst.
- Each K block's partial product is rounded to bf16 before it is added (oneDNN bfloat16 conv: exact
  bf16 products, float32 accumulation, one rounding), which is also where the speed comes from.
- The intermediate CB's format between K blocks (output dtype without packer_l1_acc) is applied.
- FLOAT32 operands are kept at float32 (the Src registers would hold TF32 or BF16 depending on the
  unpacker configuration, not established here); their fidelity masks are still applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}

# float32 bit masks of the part of a Src value the phase-0 multiplier reads (MatrixUnit.md)
_SRCA_HI = -0x80000  # 0xfff80000: sign, exponent, top 4 mantissa bits
_SRCA_NOT_LO = -0x7C001  # 0xfff83fff: everything except the next 5 mantissa bits
_SRCB_HI = -0x20000  # 0xfffe0000: sign, exponent, top 6 mantissa bits
_SRCB_NOT_LO = -0x1E001  # 0xfffe1fff: everything except the next 4 mantissa bits

BF16_EXACT = frozenset({"BFLOAT16", "BFLOAT8_B"})


@dataclass(frozen=True)
class MathConfig:
    """The compute_config fields that change conv values."""

    fidelity: str  # LoFi / HiFi2 / HiFi3 / HiFi4
    fp32_dest_acc: bool
    packer_l1_acc: bool


def conv_math_config(compute_config, input_dtype: str, weights_dtype: str) -> MathConfig:
    """What ttnn.conv2d runs with: without a compute_config, get_conv_default_compute_kernel_config
    (HiFi4, fp32_dest_acc_en only when input and weights are FLOAT32, packer_l1_acc off); a given config
    is used unchanged (init_device_compute_kernel_config returns it as is)."""
    if compute_config is None:
        return MathConfig("HiFi4", input_dtype == "FLOAT32" and weights_dtype == "FLOAT32", False)
    fidelity = compute_config.math_fidelity.name
    if fidelity not in PHASES:
        # ttnn does not validate it: the kernel is built with MATH_FIDELITY=255, i.e. 7 phases stepping by 2
        raise RuntimeError(
            f"TT_FATAL: conv2d: compute_config.math_fidelity is {fidelity}; ttnn builds the kernel "
            "with it unchecked. Set ttnn.MathFidelity.LoFi, HiFi2, HiFi3 or HiFi4."
        )
    return MathConfig(fidelity, bool(compute_config.fp32_dest_acc_en), bool(compute_config.packer_l1_acc))


def _masked(x: torch.Tensor, mask: int) -> torch.Tensor:
    # a same-size dtype view needs no particular strides: the NHWC-strided activations are not copied
    if x.dtype == torch.bfloat16:  # the top half of a float32; every mask keeps all of the bottom half
        return (x.view(torch.int16) & (mask >> 16)).view(torch.bfloat16)
    return (x.view(torch.int32) & mask).view(torch.float32)


def srca_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) of SrcA values (matmul in1, the weights): phase 0/2 and phase 1/3 multiplicands."""
    x = x.to(torch.float32)
    return _masked(x, _SRCA_HI), x - _masked(x, _SRCA_NOT_LO)


def srcb_hi(x: torch.Tensor) -> torch.Tensor:
    """The SrcB (activations) part phases 0/1 read (in x's dtype when that is bfloat16)."""
    return _masked(x if x.dtype == torch.bfloat16 else x.to(torch.float32), _SRCB_HI)


def srcb_parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) of SrcB values (matmul in0, the activations): phase 0/1 and phase 2/3 multiplicands."""
    x = x.to(torch.float32)
    return srcb_hi(x), x - _masked(x, _SRCB_NOT_LO)


def fidelity_operands(
    x: torch.Tensor, w: torch.Tensor, fidelity: str, groups: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations [N, C, H, W] and weights [O, C/groups, kh, kw] whose plain conv is the sum of the
    products the fidelity's phases compute (HiFi3 concatenates two products along channels, per group)."""
    if fidelity == "HiFi4":
        return x, w
    if fidelity == "HiFi2":
        return srcb_hi(x), w
    if fidelity == "LoFi":
        return srcb_hi(x), srca_parts(w)[0]
    x_hi, x_lo = srcb_parts(x)
    w_hi, _ = srca_parts(w)
    n, c, h, wd = x.shape
    xs = torch.cat([x_hi.reshape(n, groups, c // groups, h, wd), x_lo.reshape(n, groups, c // groups, h, wd)], 2)
    return xs.reshape(n, 2 * c, h, wd), torch.cat([w, w_hi], 1)


def round_bf16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).to(torch.float32)


def native_bf16(math: MathConfig, operands_bf16: bool) -> bool:
    """conv2d_values computes in torch bfloat16 (and returns bfloat16): a bf16 Dst with bf16 operands."""
    return not math.fp32_dest_acc and operands_bf16


def conv2d_values(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    math: MathConfig,
    operands_bf16: bool,
    interm_round: Callable[[torch.Tensor], torch.Tensor] | None,
) -> torch.Tensor:
    """Conv of the padded NCHW input `x` (values as stored on device) with weights `w`, bias added, before
    the activation and the output rounding, as the matrix engine computes it under `math`: float32, or
    bfloat16 when `native_bf16` (the values are bf16 then; `x` may be bfloat16 already, saving a copy).

    `operands_bf16`: both operands hold bfloat16-representable values (bf16 / bfloat8_b), so bf16 convs
    compute their products exactly. `interm_round`: rounding of partials packed between K blocks (None
    when the intermediate CB is FLOAT32)."""
    xs, ws = fidelity_operands(x, w, math.fidelity, groups)
    if math.fp32_dest_acc and interm_round is None:
        return F.conv2d(xs, ws, bias, stride=stride, dilation=dilation, groups=groups)
    bf16_dst = not math.fp32_dest_acc
    # bf16 tensors: products exact, float32 sums, RNE to bf16 once per op (conv partial, add): a bf16 Dst
    native = native_bf16(math, operands_bf16)
    dtype, fmt = (torch.bfloat16, torch.channels_last) if native else (torch.float32, torch.contiguous_format)
    dst_round = round_bf16 if bf16_dst and not native else (lambda t: t)
    xs, ws = xs.to(dtype), ws.to(dtype)
    kh = ws.shape[2]
    rows_out = (x.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    span = (rows_out - 1) * stride[0] + 1
    acc = None
    for r in range(kh):  # one K block per kernel row; a contiguous row slice keeps oneDNN on its fast path
        rows = xs[:, :, r * dilation[0] : r * dilation[0] + span].contiguous(memory_format=fmt)
        part = F.conv2d(rows, ws[:, :, r : r + 1], stride=stride, dilation=dilation, groups=groups)
        acc = dst_round(part if acc is None else acc + part)
        if r < kh - 1 and interm_round is not None:
            acc = interm_round(acc).to(dtype)
    assert acc is not None, "a kernel has at least one row"
    if bias is not None:
        acc = dst_round(acc + bias.to(dtype).reshape(1, -1, 1, 1))
    return acc
