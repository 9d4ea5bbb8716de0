"""Resizes: upsample (ttnn.upsample, integer scales) and resample (any scale, as two matmuls)."""

from __future__ import annotations

from converter.ops import Cost, Dtype, Layout, Lowering, Memory, OpKind, Work, Writes, functional, register


def _upsample(node, x):
    a = node.attrs
    align = a["align_corners"] if a["mode"] == "bilinear" else None
    return functional().interpolate(
        x, scale_factor=tuple(float(s) for s in a["scale_factor"]), mode=a["mode"], align_corners=align
    )


def _upsample_work(n, _) -> Work:
    if n.attrs["mode"] == "bilinear":  # weighted sum of 4 neighbours on the FPU
        return Work(eltwise_mul=4 * n.out.numel, flops=8 * n.out.numel, copies_output=True)
    return Work(copies_output=True)


register(
    OpKind(
        "upsample",
        doc="`scale_factor` is an integer (sh, sw); mode 'bilinear' or 'nearest'",
        attrs=("scale_factor", "mode", "align_corners"),
        reference=_upsample,
        memory=Memory.UPSAMPLE,
        lowering=Lowering.UPSAMPLE,
        dtype=Dtype.INPUT_ROW_MAJOR,
        reads=Layout.ROW_MAJOR,
        writes=Writes.ROW_MAJOR,
        work=_upsample_work,
        channelwise=True,
    )
)
register(
    OpKind(
        "resample",
        doc=(
            "out[n, c] = rows @ x[n, c] @ cols^T: a bilinear resize at any scale or an average pool, as a"
            " separable linear map (converter/resample.py). `kind` 'bilinear' | 'avg_pool' (for readers);"
            " `program` 'one_row' (ours: each core one output tile row at a time) | 'multicast' (Tenstorrent's"
            " 2D/1D multicast program configs, costed only). params: rows [H', H], cols [W', W]"
        ),
        attrs=("kind", "program"),
        reference=lambda n, x: n.params["rows"] @ x @ n.params["cols"].T,
        memory=Memory.RESAMPLE,
        lowering=Lowering.RESAMPLE,
        reads=Layout.ROW_MAJOR,
        writes=Writes.ROW_MAJOR,
        cost=Cost.MATMULS,
    )
)
