"""Run any IR graph in fp32 PyTorch: the numerical reference for every pass and for generated code.

One small function per op, keyed by `Node.op`. It works on graphs straight from the front end and
after the passes (BatchNorm folded away, conv/add carrying activation="relu"), because it reads
nothing but the IR's own op semantics (converter/ir.py: OP_ATTRS).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from converter.ir import Graph, Node


def _channel(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(1, -1, 1, 1)


def _activate(node: Node, y: torch.Tensor) -> torch.Tensor:
    act = node.attrs.get("activation")
    if act is None:
        return y
    if act == "relu":
        return F.relu(y)
    raise ValueError(f"node {node.name!r}: unknown activation {act!r}")


def _conv2d(node: Node, x: torch.Tensor) -> torch.Tensor:
    a = node.attrs
    y = F.conv2d(
        x, node.params["weight"], node.params.get("bias"), a["stride"], a["padding"], a["dilation"], a["groups"]
    )
    return _activate(node, y)


def _channel_affine(node: Node, x: torch.Tensor) -> torch.Tensor:
    scale, shift = node.params["scale"], node.params["shift"]
    if bool((scale == 0).any()):
        return x * _channel(scale) + _channel(shift)
    # Same value, evaluated as (x - mean) / std: the form Detectron2 normalizes pixels in. The front
    # end's scale/shift round-trip to that mean and std exactly, so this fp32 reference stays
    # bit-comparable with Detectron2 from the first op on (a 1-ulp difference in the input grows to
    # ~1e-3 at res5 through 50 layers, which would hide real lowering errors).
    return (x - _channel(-shift / scale)) / _channel(1.0 / scale)


def _global_avg_pool2d(node: Node, x: torch.Tensor) -> torch.Tensor:
    # As an average pool over the whole map (ASPP's AvgPool2d at the crop size): bit-identical to it.
    return F.avg_pool2d(x, kernel_size=tuple(x.shape[2:]), stride=1)


def _batch_norm(node: Node, x: torch.Tensor) -> torch.Tensor:
    p = node.params
    return F.batch_norm(
        x, p["running_mean"], p["running_var"], p["weight"], p["bias"], training=False, eps=node.attrs["eps"]
    )


def _upsample(node: Node, x: torch.Tensor) -> torch.Tensor:
    a = node.attrs
    align = a["align_corners"] if a["mode"] == "bilinear" else None
    return F.interpolate(
        x, scale_factor=tuple(float(s) for s in a["scale_factor"]), mode=a["mode"], align_corners=align
    )


def _avg_pool2d(node: Node, x: torch.Tensor) -> torch.Tensor:
    a = node.attrs
    return F.avg_pool2d(x, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], a["count_include_pad"])


def _resample(node: Node, x: torch.Tensor) -> torch.Tensor:
    return node.params["rows"] @ x @ node.params["cols"].T


def _max_pool2d(node: Node, x: torch.Tensor) -> torch.Tensor:
    a = node.attrs
    return F.max_pool2d(x, a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"])


OPS: dict[str, Callable[..., torch.Tensor]] = {
    "channel_affine": _channel_affine,
    "conv2d": _conv2d,
    "batch_norm": _batch_norm,
    "relu": lambda n, x: F.relu(x),
    "add": lambda n, a, b: _activate(n, a + b),
    "mul_scalar": lambda n, x: x * n.attrs["scalar"],
    "concat": lambda n, *xs: torch.cat(xs, dim=n.attrs["dim"]),
    "upsample": _upsample,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool2d": _global_avg_pool2d,
    "resample": _resample,
    "output": lambda n, x: x,
}


@torch.no_grad()
def run_graph(graph: Graph, x: torch.Tensor, taps: bool = False) -> dict[str, torch.Tensor]:
    """Outputs by head name ("sem_seg", ...), plus `graph.meta["taps"]` by tap name if `taps`."""
    wanted = dict(graph.outputs)
    if taps:
        wanted.update(graph.meta.get("taps", {}))
    keep = set(wanted.values())
    last_use = {i: k for k, n in enumerate(graph.nodes) for i in n.inputs}
    values: dict[str, torch.Tensor] = {}
    for k, node in enumerate(graph.nodes):
        if node.op == "input":
            values[node.name] = x.to(torch.float32)
            continue
        values[node.name] = OPS[node.op](node, *(values[i] for i in node.inputs))
        for i in set(node.inputs):  # free activations nobody reads any more (full size is ~GBs)
            if last_use[i] == k and i not in keep:
                del values[i]
    return {key: values[name] for key, name in wanted.items()}
