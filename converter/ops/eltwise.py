"""Elementwise ops: relu, add, mul_scalar, channel_affine (pixel normalization), batch_norm."""

from __future__ import annotations

from converter.ops import (
    Call,
    Dtype,
    Layout,
    Lowering,
    Memory,
    OpKind,
    Work,
    activated,
    functional,
    register,
)


def _channel(t):
    return t.reshape(1, -1, 1, 1)


def _channel_affine(node, x):
    scale, shift = node.params["scale"], node.params["shift"]
    if bool((scale == 0).any()):
        return x * _channel(scale) + _channel(shift)
    # Same value, evaluated as (x - mean) / std: the form Detectron2 normalizes pixels in. The front
    # end's scale/shift round-trip to that mean and std exactly, so this fp32 reference stays
    # bit-comparable with Detectron2 from the first op on (a 1-ulp difference in the input grows to
    # ~1e-3 at res5 through 50 layers, which would hide real lowering errors).
    return (x - _channel(-shift / scale)) / _channel(1.0 / scale)


def _batch_norm(node, x):
    p = node.params
    return functional().batch_norm(
        x, p["running_mean"], p["running_var"], p["weight"], p["bias"], training=False, eps=node.attrs["eps"]
    )


def _numel(node) -> int:
    return node.out.numel


register(
    OpKind(
        "relu",
        attrs=(),
        reference=lambda n, x: x.relu(),
        memory=Memory.UNARY,
        lowering=Lowering.CALL,
        call=Call("ttnn.relu"),
        dtype=Dtype.INPUT,
        reads=Layout.TILE,
        work=lambda n, _: Work(sfpu=_numel(n), flops=_numel(n)),
        channelwise=True,
        aten_unary=("relu.default", "relu_.default"),
    )
)
register(
    OpKind(
        "add",
        doc="elementwise sum of two inputs; `activation` None or 'relu' (set by fusion)",
        attrs=("activation",),
        reference=lambda n, a, b: activated(n, a + b),
        memory=Memory.BINARY,
        lowering=Lowering.CALL,
        call=Call("ttnn.add", dtype=True, activations=True),
        reads=Layout.TILE,
        work=lambda n, _: Work(eltwise=_numel(n), sfpu=_numel(n) if n.attrs.get("activation") else 0, flops=_numel(n)),
    )
)
register(
    OpKind(
        "mul_scalar",
        attrs=("scalar",),
        reference=lambda n, x: x * n.attrs["scalar"],
        memory=Memory.UNARY,
        lowering=Lowering.CALL,
        call=Call("ttnn.multiply", dtype=True, scalar="scalar"),
        reads=Layout.TILE,
        work=lambda n, _: Work(eltwise_mul=_numel(n), flops=_numel(n)),
        channelwise=True,
    )
)
register(
    OpKind(
        "channel_affine",
        doc="y = x * scale[c] + shift[c]: the pixel normalization (x - mean) / std. params: scale, shift",
        attrs=(),
        reference=_channel_affine,
        memory=Memory.AFFINE,
        lowering=Lowering.AFFINE,
        reads=Layout.TILE,
        work=lambda n, _: Work(eltwise_mul=_numel(n), eltwise=_numel(n), flops=2 * _numel(n)),
    )
)
register(
    OpKind(
        "batch_norm",
        doc="params: weight, bias, running_mean, running_var. Removed by BatchNorm folding (the baseline prices it)",
        attrs=("eps",),
        reference=_batch_norm,
        memory=Memory.UNARY,
        lowering=Lowering.NONE,
        # unfolded: subtract mean, multiply by 1/std, multiply weight, add bias
        work=lambda n, _: Work(eltwise_mul=2 * _numel(n), eltwise=2 * _numel(n), flops=4 * _numel(n)),
    )
)
