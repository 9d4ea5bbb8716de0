"""The interpolation and pooling matrices of a separable resample (IR op `resample`).

A bilinear resize (torch's F.interpolate, any scale, align_corners either way) and an average pool
(any kernel, stride and zero padding, no ceil_mode) are both linear maps that act on H and W
separately: out[n, c] = ROWS @ x[n, c] @ COLS^T with ROWS [H', H] and COLS [W', W]. The IR op keeps
the two matrices as its params; the device runs them as two matmuls (templates: `resample`).
"""

from __future__ import annotations

import torch


def bilinear_matrix(size: int, out_size: int, align_corners: bool) -> torch.Tensor:
    """[out_size, size]: row i holds the weights torch's bilinear interpolation gives output i."""
    i = torch.arange(out_size, dtype=torch.float64)
    if align_corners:
        src = i * ((size - 1) / (out_size - 1)) if out_size > 1 else torch.zeros(out_size, dtype=torch.float64)
    else:  # torch's area_pixel_compute_source_index: (i + 0.5) * in / out - 0.5, clamped at 0
        src = ((i + 0.5) * (size / out_size) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=size - 1)
    hi = (lo + 1).clamp(max=size - 1)
    frac = src - lo
    m = torch.zeros(out_size, size, dtype=torch.float64)
    m[torch.arange(out_size), lo] += 1 - frac
    m[torch.arange(out_size), hi] += frac
    return m.to(torch.float32)


def avg_pool_matrix(size: int, kernel: int, stride: int, padding: int, count_include_pad: bool) -> torch.Tensor:
    """[out, size]: row i averages its window (zero padding; divided by the kernel size, or by the
    window's part inside the input without count_include_pad: separable, as both factor per axis)."""
    out = (size + 2 * padding - kernel) // stride + 1
    m = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):
        lo, hi = i * stride - padding, i * stride - padding + kernel
        inside = range(max(lo, 0), min(hi, size))
        m[i, inside.start : inside.stop] = 1.0 / (kernel if count_include_pad else len(inside))
    return m.to(torch.float32)
