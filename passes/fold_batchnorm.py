"""TRANSFORM: fold inference BatchNorm into the conv that feeds it.

conv(x; W, b) followed by batch_norm(gamma, beta, mean, var, eps) equals conv(x; W * s, (b - mean) * s
+ beta) with s = gamma / sqrt(var + eps) per output channel. The scale and bias are computed in
float64 and the weights get one fp32 multiply, so the folded conv matches the pair to fp32 rounding. A batch_norm
whose input is
not a conv read only by it is left in place (later passes reject it by name).
"""

from __future__ import annotations

import dataclasses

import torch

from converter.ir import Graph, Node


def _folded_params(conv: Node, bn: Node) -> dict[str, torch.Tensor]:
    w = conv.params["weight"]
    b = conv.params["bias"].double() if "bias" in conv.params else torch.zeros(w.shape[0], dtype=torch.float64)
    scale = bn.params["weight"].double() / torch.sqrt(bn.params["running_var"].double() + bn.attrs["eps"])
    return {
        # per-channel scale in float64, one fp32 multiply for the (large) weights
        "weight": (w * scale.float().reshape(-1, 1, 1, 1)).contiguous(),
        "bias": ((b - bn.params["running_mean"].double()) * scale + bn.params["bias"].double()).float(),
    }


def fold_batchnorm(graph: Graph) -> Graph:
    users = graph.users()
    by_name = {n.name: n for n in graph.nodes}
    head_nodes = set(graph.outputs.values())
    folded: dict[str, Node] = {}  # conv name -> folded conv
    renamed: dict[str, str] = {}  # bn name -> conv name
    for bn in graph.nodes:
        if bn.op != "batch_norm":
            continue
        conv = by_name[bn.inputs[0]]
        if conv.op != "conv2d" or users[conv.name] != [bn.name] or conv.name in head_nodes:
            continue
        folded[conv.name] = dataclasses.replace(conv, out=bn.out, params=_folded_params(conv, bn), plan=None)
        renamed[bn.name] = conv.name
    graph = graph.absorb(renamed, folded)
    notes = {**graph.meta.get("pass_notes", {}), "fold_batchnorm": f"folded {len(renamed)} batch_norm into their convs"}
    return graph.replace_nodes(graph.nodes, meta={**graph.meta, "pass_notes": notes})
