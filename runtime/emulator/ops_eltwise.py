"""Elementwise ops: add and multiply (with fused activations), relu and sigmoid, computed by ttnn's goldens."""

from __future__ import annotations

import torch

from runtime.emulator import dtypes
from runtime.emulator.device import require_device_tensor
from runtime.emulator.tensor import Tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()


def activation_list(name: str, acts) -> list:
    """Normalise the forms the binding accepts (UnaryWithParam, UnaryOpType, (type, param)); reject strings
    and None (the binding takes a sequence: real ttnn 0.81.1 refuses `activations=None`)."""
    if not isinstance(acts, (list, tuple)):
        raise TypeError(f"{name}(): incompatible function arguments: activations must be a list, not {acts!r}")
    out = []
    for act in acts:
        if isinstance(act, str):
            raise TypeError(
                f"{name}(): incompatible function arguments: activation {act!r} must be a "
                "ttnn.UnaryWithParam, not a string"
            )
        if isinstance(act, (tuple, tt.UnaryOpType)):
            act = tt.UnaryWithParam(act)
        out.append(act)
    return out


def _binary(name: str, a, b, *, dtype, memory_config, output_tensor, activations, a_acts, b_acts):
    tensors = [t for t in (a, b) if isinstance(t, Tensor)]
    device = require_device_tensor(name, *tensors)
    golden = tt.get_golden_function(getattr(tt, name))
    kw = dict(
        activations=activation_list(name, activations),
        input_tensor_a_activations=activation_list(name, a_acts),
        input_tensor_b_activations=activation_list(name, b_acts),
    )
    first = tensors[0]
    a_is_t, b_is_t = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is_t and b_is_t:
        try:
            torch.broadcast_shapes(a.data.shape, b.data.shape)
        except RuntimeError:
            raise RuntimeError(
                f"TT_FATAL: {name}: shapes {list(a.shape)} and {list(b.shape)} are not broadcastable"
            ) from None

    def compute(*datas):
        it = iter(datas)
        x = next(it) if a_is_t else a
        y = next(it) if b_is_t else b
        return golden(x, y, **kw)

    result = compute(*[t.data for t in tensors])
    out_dtype = dtype or first.dtype
    if output_tensor is None:
        out = device.new_tensor(result, out_dtype, first.layout, memory_config or first.memory_config())
    else:  # written in place: no new tensor
        out = output_tensor
        out._data = dtypes.round_to(result, out.dtype)
    device.record_step(compute, tensors, [out])
    return out


def add(
    input_tensor_a,
    input_tensor_b,
    *,
    fast_and_approximate_mode=True,
    dtype=None,
    memory_config=None,
    output_tensor=None,
    activations=[],
    input_tensor_a_activations=[],
    input_tensor_b_activations=[],
    sub_core_grids=None,
    sub_device_id=None,
):
    return _binary(
        "add",
        input_tensor_a,
        input_tensor_b,
        dtype=dtype,
        memory_config=memory_config,
        output_tensor=output_tensor,
        activations=activations,
        a_acts=input_tensor_a_activations,
        b_acts=input_tensor_b_activations,
    )


def multiply(
    input_tensor_a,
    input_tensor_b,
    *,
    fast_and_approximate_mode=False,
    dtype=None,
    memory_config=None,
    output_tensor=None,
    activations=[],
    input_tensor_a_activations=[],
    input_tensor_b_activations=[],
    sub_core_grids=None,
    sub_device_id=None,
):
    return _binary(
        "multiply",
        input_tensor_a,
        input_tensor_b,
        dtype=dtype,
        memory_config=memory_config,
        output_tensor=output_tensor,
        activations=activations,
        a_acts=input_tensor_a_activations,
        b_acts=input_tensor_b_activations,
    )


def _unary(name: str, golden, input_tensor, memory_config):
    device = require_device_tensor(name, input_tensor)
    compute = tt.get_golden_function(golden)
    out = device.new_tensor(
        compute(input_tensor.data),
        input_tensor.dtype,
        input_tensor.layout,
        memory_config or input_tensor.memory_config(),
    )
    device.record_step(compute, [input_tensor], [out])
    return out


def relu(input_tensor, *, memory_config=None, output_tensor=None, sub_core_grids=None):
    return _unary("relu", tt.relu, input_tensor, memory_config)


def sigmoid(input_tensor, *, vector_mode=4, mode=None, memory_config=None, output_tensor=None, sub_core_grids=None):
    # mode None: ttnn's default, SigmoidMode.Accurate (the golden function is the exact sigmoid)
    return _unary("sigmoid", tt.sigmoid, input_tensor, memory_config)
