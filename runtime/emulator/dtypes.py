"""Device number formats on the host: round torch values exactly as the device would store them.

Values are always held as float32 (or int64 for uint32) torch tensors whose values are exactly
representable in the tensor's ttnn dtype, so compute can use fast float32 torch ops.

bfloat8_b is Tenstorrent's block float: in TILE layout every 16 consecutive values of a face row
(so 16 consecutive elements along the last dim, 16-aligned) share one 8-bit exponent, and each value
keeps a sign and 7 mantissa bits (hidden bit included). We follow tt-metal's host packer
(`convert_u32_to_bfp`): the 24-bit mantissa is shifted right (truncating) by (shared_exp - exp),
rounded to nearest with ties to even at 7 bits, and saturated at 127; denormals and zeros become 0.
tests/test_emulator_dtypes.py checks
this bit for bit against the real ttnn conversion under the mock cluster.
"""

from __future__ import annotations

import torch

BFP_GROUP = 16  # values sharing one exponent (a face row of a 32x32 tile)


def dtype_name(dtype) -> str:
    """'BFLOAT16' etc. for a ttnn.DataType."""
    return dtype.name


def round_bfloat16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).to(torch.float32)


def round_bfloat8_b(x: torch.Tensor) -> torch.Tensor:
    """Round a float tensor to bfloat8_b values (shared exponent per 16 values along the last dim).

    Done in float32 arithmetic, which is exact here (power-of-two scaling, floor and round):
    t = floor(|x| * 2^(150 - E)) is tt-metal's mantissa after its right shift by (E - e), and
    round-half-even(t / 2^17) its 7-bit rounding. The shared exponent E is that of the group's largest
    magnitude (denormals and zeros, exponent 0, flush to 0 first). Much faster in torch than integer
    bit operations on the mantissas; every full-size pass after the first copy is in place (this
    rounds every bfloat8_b activation, so its passes are most of the emulator's time outside convs).
    """
    shape = x.shape
    width = shape[-1] if len(shape) else 1
    pad = (-width) % BFP_GROUP
    a = torch.empty(shape, dtype=torch.float32).copy_(x).abs_().view(-1, width)  # new and contiguous
    if pad:
        a = torch.nn.functional.pad(a, (0, pad))
    groups = a.view(a.shape[0], -1, BFP_GROUP)
    groups.masked_fill_(groups < 2.0**-126, 0.0)  # denormals flush to 0
    exp = (groups.amax(dim=-1, keepdim=True).view(torch.int32) >> 23).to(torch.float32)  # biased exponent
    shift = 150.0 - exp
    if int(shift.max()) <= 127:  # 2^shift is a float32: one multiply
        groups.mul_(torch.exp2(shift))
    else:  # a group of tiny values: scale in two halves so that no factor overflows
        half = torch.floor(shift * 0.5)
        groups.mul_(torch.exp2(half)).mul_(torch.exp2(shift - half))
    groups.floor_().mul_(2.0**-17).round_().clamp_(max=127.0).mul_(torch.exp2(17.0 - shift))
    out = a[:, :width] if pad else a
    return out.reshape(shape).copysign_(x.to(torch.float32).reshape(shape) if x.dtype != torch.float32 else x)


def round_to(x: torch.Tensor, dtype) -> torch.Tensor:
    """`x` as the device would hold it in `dtype` (a ttnn.DataType)."""
    name = dtype_name(dtype)
    if name == "FLOAT32":
        return x.to(torch.float32)
    if name == "BFLOAT16":
        return round_bfloat16(x)
    if name == "BFLOAT8_B":
        return round_bfloat8_b(x)
    if name == "UINT32":
        return x.to(torch.int64).clamp(0, 2**32 - 1)
    raise TypeError(f"emulator: unsupported dtype {dtype}")
