"""Window reductions: max_pool2d, avg_pool2d, global_avg_pool2d."""

from __future__ import annotations

import math

from converter.ops import Call, Lowering, Memory, OpKind, Work, functional, register


def _window(n) -> int:
    """Input elements the pool reads: its kernel window at every output element."""
    kh, kw = n.attrs["kernel_size"]  # a pair (the front end's)
    return n.out.numel * int(kh) * int(kw)


def _max_pool2d(node, x):
    a = node.attrs
    return functional().max_pool2d(x, a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"])


def _avg_pool2d(node, x):
    a = node.attrs
    return functional().avg_pool2d(
        x, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"]
    )


def _global_avg_pool2d(node, x):
    # As an average pool over the whole map (ASPP's AvgPool2d at the crop size): bit-identical to it.
    return functional().avg_pool2d(x, kernel_size=tuple(x.shape[2:]), stride=1)


register(
    OpKind(
        "max_pool2d",
        attrs=("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
        reference=_max_pool2d,
        memory=Memory.POOL,
        lowering=Lowering.POOL,
        call=Call("ttnn.max_pool2d", attrs=("dilation", "ceil_mode")),
        work=lambda n, _: Work(reduce=_window(n), flops=_window(n), copies_output=True, halo=True),
    )
)
register(
    OpKind(
        "avg_pool2d",
        attrs=("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
        reference=_avg_pool2d,
        memory=Memory.POOL,
        lowering=Lowering.POOL,
        call=Call("ttnn.avg_pool2d", attrs=("ceil_mode", "count_include_pad")),
        work=lambda n, _: Work(reduce_mul=_window(n), flops=_window(n), copies_output=True, halo=True),
    )
)
register(
    OpKind(
        "global_avg_pool2d",
        doc="mean over H and W, output spatial 1x1 (what ASPP image pooling is at the training size)",
        attrs=(),
        reference=_global_avg_pool2d,
        memory=Memory.GLOBAL_POOL,
        lowering=Lowering.GLOBAL_POOL,
        work=lambda n, shapes: Work(reduce_mul=math.prod(shapes[0]), flops=math.prod(shapes[0])),
    )
)
