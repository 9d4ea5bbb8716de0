"""Trace Detectron2's Panoptic-DeepLab inference core into the IR (`converter.ir.Graph`).

Why torch.export and not torch.fx.symbolic_trace: symbolic tracing stops at data-dependent Python
control flow that Detectron2 has on the inference path (`ResNet.forward` asserts on `x.dim()`,
`detectron2.layers.Conv2d.forward` branches on tensor properties), so it needs leaf-module tricks
and still cannot trace the backbone. torch.export runs the real Python code on fake tensors, so
every branch is resolved for the concrete input size, and it hands back one flat fx graph of ATen
ops, each with `meta["val"]` (its output shape) and `meta["nn_module_stack"]` (the Detectron2 module
it ran in). That is exactly what the IR needs: shapes, and a readable source for each node.

What is traced is `_InferenceCore`: pixel normalization with the model's own buffers -> backbone ->
sem_seg_head (eval path, including its x4 bilinear upsample) -> ins_embed_head (panoptic only,
including its upsample and `offset * common_stride`). Everything else (image decoding, resizing,
panoptic fusion) stays on the host and is described in `graph.meta`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from converter.errors import UserError
from converter.ir import Graph, Node, TensorInfo
from converter.model import VARIANT_OUTPUTS, check_variant, taps_for
from converter.ops import REGISTRY
from converter.resample import bilinear_matrix

aten = torch.ops.aten


class _InferenceCore(nn.Module):
    """The model's tensor-in, tensors-out part, holding Detectron2's own submodules and buffers.

    Submodules keep their attribute names, so nn_module_stack paths are the model's own module paths.
    """

    backbone: nn.Module
    sem_seg_head: nn.Module
    ins_embed_head: nn.Module
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, model: Any, variant: str):  # a Detectron2 meta-architecture
        super().__init__()
        self.backbone = model.backbone
        self.sem_seg_head = model.sem_seg_head
        if variant == "panoptic_deeplab":
            self.ins_embed_head = model.ins_embed_head
        self.register_buffer("pixel_mean", model.pixel_mean, persistent=False)
        self.register_buffer("pixel_std", model.pixel_std, persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = (x - self.pixel_mean) / self.pixel_std
        features = self.backbone(x)
        sem_seg, _ = self.sem_seg_head(features)
        if not hasattr(self, "ins_embed_head"):
            return (sem_seg,)
        center, offset, _, _ = self.ins_embed_head(features)
        return sem_seg, center, offset


@dataclass
class _Lifted:
    """One fx node translated into an IR op, with the fx nodes it reads."""

    op: str
    inputs: list[fx.Node]
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, torch.Tensor] = field(default_factory=dict)


def _pair(v: Any) -> tuple[int, int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return (int(v[0]), int(v[-1]))


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _tensor(a: fx.node.Argument) -> fx.Node:
    """An op's tensor argument: an fx node (a constant there is not lowered)."""
    if not isinstance(a, fx.Node):
        raise _Unsupported(f"an op with the constant {a!r} where a tensor is expected")
    return a


def _sequence(a: fx.node.Argument) -> list[fx.node.Argument]:
    if not isinstance(a, (list, tuple)):
        raise _Unsupported(f"an op with {a!r} where a list of tensors is expected")
    return list(a)


def _shape(n: fx.Node) -> tuple[int, ...]:
    return tuple(int(d) for d in n.meta["val"].shape)


class _Lifter:
    """Translates the exported program's ATen nodes into IR ops, one handler per ATen overload."""

    def __init__(self, exported: torch.export.ExportedProgram):
        sig = exported.graph_signature
        tensors = {**exported.state_dict, **exported.constants}
        self.consts: dict[str, torch.Tensor] = {}
        for spec in sig.input_specs:
            if spec.target is not None:
                self.consts[spec.arg.name] = tensors[spec.target]
        self.handlers: dict[Any, Callable[[fx.Node], _Lifted | fx.Node]] = {
            aten.conv2d.default: self.conv2d,
            aten.batch_norm.default: self.batch_norm,
            aten.add.Tensor: self.add,
            aten.add_.Tensor: self.add,
            aten.cat.default: self.concat,
            aten.upsample_bilinear2d.vec: self.upsample("bilinear"),
            aten.upsample_nearest2d.vec: self.upsample("nearest"),
            aten.avg_pool2d.default: self.avg_pool2d,
            aten.adaptive_avg_pool2d.default: self.adaptive_avg_pool2d,
            aten.max_pool2d.default: self.max_pool2d,
            aten.mul.Tensor: self.mul,
            aten.sub.Tensor: self.sub,
            aten.div.Tensor: self.div,
            aten.dropout.default: self.dropout,
        }
        for kind in REGISTRY.values():  # ops a descriptor lifts from one-tensor ATen overloads (relu)
            for overload in kind.aten_unary:
                packet, name = overload.split(".")
                self.handlers[getattr(getattr(aten, packet), name)] = self.unary(kind.name)

    def const(self, n: Any, what: str) -> torch.Tensor:
        if not isinstance(n, fx.Node) or n.name not in self.consts:
            raise _Unsupported(what)
        return self.consts[n.name].detach().to(torch.float32).clone()

    def conv2d(self, n: fx.Node) -> _Lifted:
        x, w = _tensor(n.args[0]), self.const(n.args[1], "conv2d with a computed weight")
        bias = _arg(n, 2, "bias", None)
        padding = _arg(n, 4, "padding", 0)
        if isinstance(padding, str):
            raise _Unsupported(f"conv2d with padding={padding!r}")
        groups = int(_arg(n, 6, "groups", 1))
        params = {"weight": w}
        if bias is not None:
            params["bias"] = self.const(bias, "conv2d with a computed bias")
        attrs = {
            "in_channels": int(w.shape[1]) * groups,
            "out_channels": int(w.shape[0]),
            "kernel_size": (int(w.shape[2]), int(w.shape[3])),
            "stride": _pair(_arg(n, 3, "stride", 1)),
            "padding": _pair(padding),
            "dilation": _pair(_arg(n, 5, "dilation", 1)),
            "groups": groups,
            "activation": None,
        }
        return _Lifted("conv2d", [x], attrs, params)

    def batch_norm(self, n: fx.Node) -> _Lifted:
        x, weight, bias, mean, var, training = n.args[:6]
        x = _tensor(x)
        if training:
            raise _Unsupported("batch_norm in training mode")
        channels = _shape(x)[1]
        params = {
            "weight": self.const(weight, "batch_norm") if weight is not None else torch.ones(channels),
            "bias": self.const(bias, "batch_norm") if bias is not None else torch.zeros(channels),
            "running_mean": self.const(mean, "batch_norm without running stats"),
            "running_var": self.const(var, "batch_norm without running stats"),
        }
        return _Lifted("batch_norm", [x], {"eps": float(_arg(n, 7, "eps", 1e-5))}, params)

    def unary(self, op: str) -> Callable[[fx.Node], _Lifted]:
        return lambda n: _Lifted(op, [_tensor(n.args[0])])

    def add(self, n: fx.Node) -> _Lifted:
        a, b = n.args[:2]
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node) and n.kwargs.get("alpha", 1) == 1):
            raise _Unsupported("add of a constant or with alpha != 1")
        return _Lifted("add", [a, b], {"activation": None})

    def concat(self, n: fx.Node) -> _Lifted:
        inputs = [_tensor(a) for a in _sequence(n.args[0])]
        dim = int(_arg(n, 1, "dim", 0)) % len(_shape(n))
        return _Lifted("concat", inputs, {"dim": dim})

    def upsample(self, mode: str) -> Callable[[fx.Node], _Lifted]:
        def lift(n: fx.Node) -> _Lifted:
            x = _tensor(n.args[0])
            (h, w), (oh, ow) = _shape(x)[2:], _shape(n)[2:]
            align = bool(_arg(n, 2, "align_corners", False)) if mode == "bilinear" else False
            if oh % h == 0 and ow % w == 0 and not align:
                return _Lifted(
                    "upsample", [x], {"scale_factor": (oh // h, ow // w), "mode": mode, "align_corners": align}
                )
            if mode != "bilinear":
                raise _NotLowerable(
                    f"resizes {h}x{w} to {oh}x{ow} (nearest) at this input size, a non-integer "
                    "scale: choose an input size whose feature maps divide evenly"
                )
            # ttnn's upsample takes integer scales only: the resize as two interpolation matmuls
            return _Lifted(
                "resample",
                [x],
                {"kind": "bilinear", "program": "one_row"},
                {"rows": bilinear_matrix(h, oh, align), "cols": bilinear_matrix(w, ow, align)},
            )

        return lift

    def avg_pool2d(self, n: fx.Node) -> _Lifted:
        x = _tensor(n.args[0])
        kernel = _pair(n.args[1])
        stride = _pair(_arg(n, 2, "stride", []) or kernel)
        padding = _pair(_arg(n, 3, "padding", 0))
        if _arg(n, 6, "divisor_override", None) is not None:
            raise _Unsupported("avg_pool2d with divisor_override")
        if kernel == _shape(x)[2:] and padding == (0, 0):
            return _Lifted("global_avg_pool2d", [x])
        return _Lifted(
            "avg_pool2d",
            [x],
            {
                "kernel_size": kernel,
                "stride": stride,
                "padding": padding,
                "ceil_mode": bool(_arg(n, 4, "ceil_mode", False)),
                "count_include_pad": bool(_arg(n, 5, "count_include_pad", True)),
            },
        )

    def adaptive_avg_pool2d(self, n: fx.Node) -> _Lifted:
        if _pair(n.args[1]) != (1, 1):
            raise _Unsupported("adaptive_avg_pool2d to an output other than 1x1")
        return _Lifted("global_avg_pool2d", [_tensor(n.args[0])])

    def max_pool2d(self, n: fx.Node) -> _Lifted:
        kernel = _pair(n.args[1])
        return _Lifted(
            "max_pool2d",
            [_tensor(n.args[0])],
            {
                "kernel_size": kernel,
                "stride": _pair(_arg(n, 2, "stride", []) or kernel),
                "padding": _pair(_arg(n, 3, "padding", 0)),
                "dilation": _pair(_arg(n, 4, "dilation", 1)),
                "ceil_mode": bool(_arg(n, 5, "ceil_mode", False)),
            },
        )

    def mul(self, n: fx.Node) -> _Lifted:
        x, s = n.args[:2]
        if not isinstance(x, fx.Node) or not isinstance(s, (int, float)):
            raise _Unsupported("mul by a tensor")
        return _Lifted("mul_scalar", [x], {"scalar": float(s)})

    def _per_channel(self, n: fx.Node) -> tuple[fx.Node, torch.Tensor]:
        x, c = _tensor(n.args[0]), n.args[1]
        channels = _shape(x)[1]
        c = self.const(c, "elementwise op with a computed operand")
        if c.numel() != channels or c.dim() < 3 or any(d != 1 for d in c.shape[-2:]):
            raise _Unsupported("elementwise op that is not per channel")
        return x, c.reshape(channels)

    def sub(self, n: fx.Node) -> _Lifted:  # (x - mean): the pixel normalization's first half
        x, c = self._per_channel(n)
        return _Lifted("channel_affine", [x], params={"scale": torch.ones_like(c), "shift": -c})

    def div(self, n: fx.Node) -> _Lifted:  # (... / std): its second half
        x, c = self._per_channel(n)
        return _Lifted("channel_affine", [x], params={"scale": 1.0 / c, "shift": torch.zeros_like(c)})

    def dropout(self, n: fx.Node) -> fx.Node:
        if _arg(n, 2, "train", False):
            raise _Unsupported("dropout in training mode")
        return _tensor(n.args[0])


class _Unsupported(Exception):
    """An ATen node the IR cannot express; turned into a UserError naming the op and its module."""


class _NotLowerable(Exception):
    """A supported op whose arguments at this input size the device cannot run; a UserError."""


def _source(n: fx.Node) -> tuple[str, str]:
    """(innermost Detectron2 module path, its class name) that executed fx node `n`."""
    stack = n.meta.get("nn_module_stack") or {}
    for path, cls in reversed(list(stack.values())):
        if path:
            return path, cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
    return "", "the top-level model"


def _node_name(op: str, source: str, cls: str) -> str:
    """Convs and BNs are named by their own module path; other ops by module path + op."""
    if (op == "conv2d" and "Conv" in cls) or (op == "batch_norm" and "BatchNorm" in cls):
        return source
    return f"{source}.{op}" if source else op


def _host_steps(model: Any, variant: str, input_size: tuple[int, int], batch: int) -> tuple[str, str]:
    h, w = input_size
    fmt = getattr(model, "input_format", "RGB")
    pre = (
        f"decode the image to {fmt} (channel order the model was trained with), resize to {h}x{w}, "
        f"HWC uint8 -> {batch}x3xHxW float32 in 0-255 (normalization by pixel mean/std is on device)"
    )
    if variant != "panoptic_deeplab":
        post = "argmax of sem_seg over the class axis -> per-pixel semantic label"
    else:
        post = (
            f"argmax of sem_seg -> semantic labels; Panoptic-DeepLab fusion of semantic labels, center "
            f"heatmap and offsets (center threshold {model.threshold}, {model.nms_kernel}x"
            f"{model.nms_kernel} max-pool NMS, top-k {model.top_k}, stuff area {model.stuff_area}, "
            f"label divisor {model.meta.label_divisor}) -> panoptic ids"
        )
    return pre, post


def export_core(model: Any, variant: str, input_size: tuple[int, int], batch: int = 1) -> torch.export.ExportedProgram:
    """torch.export of the inference core at a fixed Nx3xHxW size (puts the model in eval mode)."""
    check_variant(variant)
    if variant not in model.variants:
        raise UserError(
            f"the model of config {model.config_name!r} has no variant {variant!r}; "
            f"choose {' or '.join(model.variants)}"
        )
    if len(input_size) != 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise UserError(f"input size {input_size!r} is not two positive integers; use e.g. 512x1024")
    divisibility = getattr(model, "size_divisibility", -1)
    if divisibility > 0 and any(s % divisibility for s in input_size):
        raise UserError(
            f"input size {input_size[0]}x{input_size[1]} is not a multiple of the config's "
            f"MODEL.PANOPTIC_DEEPLAB.SIZE_DIVISIBILITY {divisibility}; use a multiple of it"
        )
    core = _InferenceCore(model, variant).eval()
    if not (isinstance(batch, int) and batch >= 1):
        raise UserError(f"batch size {batch!r} is not a positive integer; use e.g. 1 or 2")
    example = torch.zeros((batch, 3, *input_size))
    try:
        return torch.export.export(core, (example,))
    except ValueError as e:  # Detectron2's own size checks (e.g. ASPP pooling window vs feature size)
        reason = " ".join(str(e).split())
        raise UserError(
            f"Detectron2 rejects input size {input_size[0]}x{input_size[1]}: {reason}; "
            "use the config's training crop size or a multiple of it"
        ) from None


def lift_program(
    exported: torch.export.ExportedProgram, heads: tuple[str, ...]
) -> tuple[list[Node], dict[str, str], list[dict[str, str]]]:
    """The IR nodes of an exported program (one image input, its outputs named `heads`), the output
    node of each head, and the identity ops dropped on the way."""
    lifter = _Lifter(exported)
    fx_graph = exported.graph
    fx_users = {n.name: len(n.users) for n in fx_graph.nodes}
    value: dict[str, str] = {}  # fx node name -> name of the IR node holding its value
    nodes: list[Node] = []
    index: dict[str, int] = {}  # IR node name -> position in `nodes`
    identity_ops: list[dict[str, str]] = []
    outputs: dict[str, str] = {}
    input_hw: tuple[int, ...] = ()

    def emit(node: Node) -> None:
        index[node.name] = len(nodes)
        nodes.append(node)

    def unique(base: str) -> str:
        name, k = base, 0
        while name in index:
            k += 1
            name = f"{base}_{k}"
        return name

    for n in fx_graph.nodes:
        if n.op == "placeholder":
            if n.name not in lifter.consts:
                emit(Node("input", "input", (), TensorInfo(_shape(n)), ""))
                input_hw = _shape(n)[2:]
                value[n.name] = "input"
            continue
        if n.op == "output":
            for head, result in zip(heads, n.args[0], strict=True):
                head_node = nodes[index[value[result.name]]]
                name = unique(f"output.{head}")
                emit(Node(name, "output", (head_node.name,), head_node.out, head_node.source))
                outputs[head] = name
            continue
        source, cls = _source(n)
        handler = lifter.handlers.get(n.target)
        try:
            if handler is None:
                raise _Unsupported("")
            lifted = handler(n)
        except _Unsupported as e:
            target = n.target if n.target is not operator.getitem else "operator.getitem"
            detail = f" ({e})" if str(e) else ""
            raise UserError(
                f"unsupported operation {target}{detail} in Detectron2 module "
                f"{source or 'the top-level model'} ({cls}); pdl2ttnn lowers only "
                f"{', '.join(sorted(REGISTRY))}: use a config without it"
            ) from None
        except _NotLowerable as e:
            raise UserError(f"input size {input_hw[0]}x{input_hw[1]}: {source or 'the top-level model'} {e}") from None
        if isinstance(lifted, fx.Node):  # an identity in eval mode: forward its input
            value[n.name] = value[lifted.name]
            identity_ops.append({"op": str(n.target), "source": source, "why": "identity in eval mode; removed"})
            continue
        inputs = tuple(value[i.name] for i in lifted.inputs)
        producer = nodes[index[inputs[0]]] if inputs else None
        if (
            lifted.op == "channel_affine"
            and producer is not None
            and producer.op == "channel_affine"
            and fx_users[lifted.inputs[0].name] == 1
        ):
            # (x - mean) / std: two per-channel affines in a row become one.
            s1, t1 = producer.params["scale"], producer.params["shift"]
            s2, t2 = lifted.params["scale"], lifted.params["shift"]
            nodes[index[producer.name]] = Node(
                producer.name,
                "channel_affine",
                producer.inputs,
                TensorInfo(_shape(n)),
                producer.source,
                params={"scale": s1 * s2, "shift": t1 * s2 + t2},
            )
            value[n.name] = producer.name
            continue
        name = unique(_node_name(lifted.op, source, cls))
        emit(Node(name, lifted.op, inputs, TensorInfo(_shape(n)), source, lifted.attrs, lifted.params))
        value[n.name] = name

    return nodes, outputs, identity_ops


def trace_model(model: Any, variant: str, input_size: tuple[int, int], batch: int = 1) -> Graph:
    """The IR graph of `model`'s inference core for an Nx3xHxW input (N = `batch`; RGB 0-255 floats)."""
    size = (input_size[0], input_size[1])
    exported = export_core(model, variant, size, batch)
    nodes, outputs, identity_ops = lift_program(exported, VARIANT_OUTPUTS[variant])
    taps = {}
    for tap, module in taps_for(variant).items():
        inside = [
            x.name for x in nodes if x.op != "output" and (x.source == module or x.source.startswith(module + "."))
        ]
        taps[tap] = inside[-1]
    pre, post = _host_steps(model, variant, size, batch)
    meta = {
        "variant": variant,
        "input_size": tuple(input_size),
        "config": getattr(model, "config_name", ""),
        "host_preprocess": pre,
        "host_postprocess": post,
        "identity_ops": identity_ops,
        "taps": taps,
    }
    return Graph(tuple(nodes), outputs, meta)
