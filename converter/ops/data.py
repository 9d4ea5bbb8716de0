"""The graph's ends and data movement: input, output, concat."""

from __future__ import annotations

from converter.ops import Cost, Dtype, Lowering, Memory, OpKind, Work, Writes, register, torch_module

register(
    OpKind(
        "input",
        doc="the model input, Nx3xHxW RGB 0-255 floats from the host",
        attrs=(),
        reference=None,
        memory=Memory.INPUT,
        lowering=Lowering.INPUT,
        writes=Writes.IMAGE,
        cost=Cost.HOST,
    )
)
register(
    OpKind(
        "output",
        doc="a graph output (a head): no device op",
        attrs=(),
        reference=lambda n, x: x,
        memory=Memory.OUTPUT,
        lowering=Lowering.OUTPUT,
        dtype=Dtype.INPUT,
        writes=Writes.AS_INPUT,
        cost=Cost.HOST,
    )
)
register(
    OpKind(
        "concat",
        doc="channel concat (dim=1 in NCHW)",
        attrs=("dim",),
        reference=lambda n, *xs: torch_module().cat(xs, dim=n.attrs["dim"]),
        memory=Memory.CONCAT,
        lowering=Lowering.CONCAT,
        dtype=Dtype.INPUT,
        writes=Writes.AS_READ,
        work=lambda n, _: Work(copies_output=True),
    )
)
