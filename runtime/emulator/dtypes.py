"""Device number formats on the host: round torch values exactly as the device would store them.

Values are always held as float32 (or int64 for uint32) torch tensors whose values are exactly
representable in the tensor's ttnn dtype, so compute can use fast float32 torch ops.

bfloat8_b is Tenstorrent's block float: in TILE layout every 16 consecutive values of a face row
(so 16 consecutive elements along the last dim, 16-aligned) share one 8-bit exponent, and each value
keeps a sign and 7 mantissa bits (hidden bit included). We follow tt-metal's host packer
(`convert_u32_to_bfp`): the 24-bit mantissa is shifted right by (shared_exp - exp), rounded to
nearest with ties to even at 7 bits, and saturated at 127; denormals and zeros become 0. tests/test_emulator_dtypes.py checks
this bit for bit against the real ttnn conversion under the mock cluster.
"""

from __future__ import annotations

import torch

BFP_GROUP = 16  # values sharing one exponent (a face row of a 32x32 tile)

# bytes per 32x32 tile (Tile.get_tile_size under the mock cluster, api facts §3)
TILE_BYTES = {"FLOAT32": 4096, "BFLOAT16": 2048, "BFLOAT8_B": 1088, "UINT32": 4096}
ELEMENT_BYTES = {"FLOAT32": 4, "BFLOAT16": 2, "UINT32": 4}


def dtype_name(dtype) -> str:
    """'BFLOAT16' etc. for a ttnn.DataType."""
    return dtype.name


def round_bfloat16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).to(torch.float32)


def round_bfloat8_b(x: torch.Tensor) -> torch.Tensor:
    """Round a float tensor to bfloat8_b values (shared exponent per 16 values along the last dim)."""
    shape = x.shape
    width = shape[-1] if len(shape) else 1
    pad = (-width) % BFP_GROUP
    xf = x.to(torch.float32).reshape(-1, width)
    if pad:
        xf = torch.nn.functional.pad(xf, (0, pad))
    groups = xf.reshape(xf.shape[0], -1, BFP_GROUP)
    bits = groups.contiguous().view(torch.int32)
    exp = (bits >> 23) & 0xFF
    shared = exp.amax(dim=-1, keepdim=True)
    mant = (bits & 0x7FFFFF) | 0x800000
    shift = (shared - exp).clamp(max=31)
    shifted = mant >> shift
    m = shifted >> 17
    rest = shifted & 0x1FFFF
    m = m + ((rest > 0x10000) | ((rest == 0x10000) & ((m & 1) == 1))).to(m.dtype)
    m = m.clamp(max=127)
    m = torch.where(exp == 0, torch.zeros_like(m), m)  # zeros and denormals flush to 0
    scale = torch.exp2((shared - 133).to(torch.float32))
    out = m.to(torch.float32) * scale
    out = torch.where(bits < 0, -out, out)
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
