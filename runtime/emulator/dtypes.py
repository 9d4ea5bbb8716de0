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
    round-half-even(t / 2^17) its 7-bit rounding. The scale is applied in two halves so that no
    factor overflows. Exponents are read from the float32 bits (0 for zeros and denormals, which
    flush to 0). Much faster in torch than integer bit operations on the mantissas.
    """
    shape = x.shape
    width = shape[-1] if len(shape) else 1
    pad = (-width) % BFP_GROUP
    xf = x.to(torch.float32).reshape(-1, width)
    if pad:
        xf = torch.nn.functional.pad(xf, (0, pad))
    groups = xf.reshape(xf.shape[0], -1, BFP_GROUP)
    exp = (groups.view(torch.int32) >> 23) & 0xFF  # biased exponent
    a = groups.abs() * (exp > 0)
    shift = 150 - exp.amax(dim=-1, keepdim=True)
    half = shift >> 1
    t = torch.floor(a * torch.exp2(half.to(torch.float32)) * torch.exp2((shift - half).to(torch.float32)))
    m = torch.round(t * 2.0**-17).clamp_(max=127.0)
    out = torch.copysign(m * torch.exp2((17 - shift).to(torch.float32)), groups)
    out = out.reshape(xf.shape[0], -1)[:, :width]
    return out.reshape(shape)


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
