"""TRANSFORM: widen the convs that feed a bilinear upsample to whole tiles of channels.

ttnn 0.81.1's bilinear upsample requires `in_channels % 32 == 0` (TT_FATAL in
upsample_bilinear_program_factory_multicore.cpp), and Panoptic-DeepLab's heads end in 19-, 1- and
2-channel predictors upsampled x4. So each such predictor conv gets zero weights and zero bias on
extra output channels up to a multiple of 32: those channels are exact zeros through the channelwise
ops between it and the upsample and after it (mul_scalar, relu), so every real channel is unchanged.
Shapes are widened along the way; `graph.meta["logical_channels"]` keeps each widened node's real
channel count for the generated module's OUTPUTS and TAPS (the runtime reads the first C channels).

requires: BatchNorm folded (the conv's bias is its only affine part), before dtype policy.
ensures: every bilinear upsample reads a multiple of 32 channels where its producer chain allows it.
"""

from __future__ import annotations

import dataclasses

import torch

from converter.ir import Graph, Node, TensorInfo
from converter.ops import Memory, is_output, op_kind
from passes.cb_model import TILE, round_up


def _widens(n: Node) -> bool:
    """A reader that takes a wider input as it is: a channelwise op or a graph output."""
    return op_kind(n).channelwise or is_output(n)


def _widened(n: Node, channels: int) -> Node:
    shape = (n.out.shape[0], channels, *n.out.shape[2:])
    return dataclasses.replace(n, out=TensorInfo(shape, n.out.dtype))


def _pad_conv(n: Node, channels: int) -> Node:
    extra = channels - n.attrs["out_channels"]
    params = dict(n.params)
    w = params["weight"]
    params["weight"] = torch.cat([w, w.new_zeros((extra, *w.shape[1:]))])
    bias = params.get("bias", w.new_zeros(n.attrs["out_channels"]))
    params["bias"] = torch.cat([bias, bias.new_zeros(extra)])
    return _widened(dataclasses.replace(n, attrs={**n.attrs, "out_channels": channels}, params=params), channels)


def pad_channels(graph: Graph) -> Graph:
    by_name = {n.name: n for n in graph}
    users = graph.users()
    replaced: dict[str, Node] = {}
    logical: dict[str, int] = dict(graph.meta.get("logical_channels", {}))
    for up in graph:
        if op_kind(up).memory is not Memory.UPSAMPLE or up.attrs["mode"] != "bilinear" or up.out.shape[1] % TILE == 0:
            continue
        chain = [by_name[up.inputs[0]]]  # back from the upsample through channelwise ops to a conv
        while op_kind(chain[-1]).channelwise:
            chain.append(by_name[chain[-1].inputs[0]])
        conv = chain[-1]
        # every reader from the conv on must be channelwise (or the upsample, or a graph output)
        region, stack = [], [conv.name]
        while stack:
            name = stack.pop()
            region.append(name)
            stack += [u for u in users[name] if _widens(by_name[u])]
        if (
            op_kind(conv).memory is not Memory.CONV
            or conv.attrs["groups"] != 1
            or any(not _widens(by_name[u]) for r in region for u in users[r])
        ):
            continue
        channels = round_up(conv.out.shape[1], TILE)
        for name in region:
            n = replaced.get(name, by_name[name])
            logical.setdefault(name, n.out.shape[1])
            replaced[name] = _pad_conv(n, channels) if name == conv.name else _widened(n, channels)
    if not replaced:
        return graph
    nodes = [replaced.get(n.name, n) for n in graph]
    return graph.replace_nodes(nodes, meta={**graph.meta, "logical_channels": logical})
