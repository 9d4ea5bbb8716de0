"""conv2d: the matrix engine's op (conv sharding, the conv table in generated code)."""

from __future__ import annotations

from converter.ops import Cost, Lowering, Memory, OpKind, Writes, activated, functional, register


def _conv2d(node, x):
    a = node.attrs
    y = functional().conv2d(
        x, node.params["weight"], node.params.get("bias"), a["stride"], a["padding"], a["dilation"], a["groups"]
    )
    return activated(node, y)


register(
    OpKind(
        "conv2d",
        doc=(
            "params: weight [O, I/groups, kh, kw], optional bias [O]. `activation` None or 'relu' (set by"
            " fusion). Optional `reads_merged`: the merged convs whose wider output it reads with zero"
            " weights on the other convs' channels (set by passes/merge_siblings.py)"
        ),
        attrs=("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "activation"),
        reference=_conv2d,
        memory=Memory.CONV,
        lowering=Lowering.CONV,
        writes=Writes.CONV,
        cost=Cost.CONV,
    )
)
