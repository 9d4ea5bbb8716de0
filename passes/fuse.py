"""TRANSFORM: fuse what ttnn 0.81.1 fuses, so the generated code runs fewer ops.

- conv2d + relu -> conv2d(activation="relu") (Conv2dConfig.activation = RELU);
- add + relu -> add(activation="relu") (ttnn.add(..., activations=[RELU]));
- conv2d -> [upsample(bilinear)] -> mul_scalar(k) -> conv2d with weights and bias scaled by k, and
  the upsample moved after: bilinear interpolation is linear with weights summing to 1, so scaling
  before it is exact up to fp32 rounding (Panoptic-DeepLab's offset head: offsets * common stride).
A producer is fused only when the fused-away op is its only user and it is not a graph output.
"""

from __future__ import annotations

import dataclasses

from converter.ir import Graph, Node
from converter.ops import op_kind


def _fuse_relu(graph: Graph) -> tuple[Graph, int]:
    users = graph.users()
    heads = set(graph.outputs.values())
    by_name = {n.name: n for n in graph.nodes}
    absorbed: dict[str, str] = {}  # relu name -> host name
    hosts: dict[str, Node] = {}
    for n in graph.nodes:
        if n.op != "relu":
            continue
        host = by_name[n.inputs[0]]
        if (
            "activation" in op_kind(host).attrs  # ops that fuse an activation (conv2d, add)
            and host.attrs.get("activation") is None
            and users[host.name] == [n.name]
            and host.name not in heads
        ):
            hosts[host.name] = dataclasses.replace(host, attrs={**host.attrs, "activation": "relu"})
            absorbed[n.name] = host.name
    return graph.absorb(absorbed, hosts), len(absorbed)


def _fold_output_scale(graph: Graph) -> tuple[Graph, int]:
    """conv -> [bilinear upsample] -> mul_scalar: scale the conv's parameters instead."""
    users = graph.users()
    heads = set(graph.outputs.values())
    by_name = {n.name: n for n in graph.nodes}
    absorbed: dict[str, str] = {}
    replaced: dict[str, Node] = {}
    for mul in graph.nodes:
        if mul.op != "mul_scalar":
            continue
        chain = [by_name[mul.inputs[0]]]
        if chain[0].op == "upsample" and chain[0].attrs["mode"] == "bilinear":
            chain.append(by_name[chain[0].inputs[0]])
        conv = chain[-1]
        if (
            conv.op != "conv2d"
            or conv.attrs.get("activation") is not None
            or any(users[c.name] != [u] for c, u in zip(chain, [mul.name] + [c.name for c in chain], strict=False))
            or any(c.name in heads for c in chain)
        ):
            continue
        k = float(mul.attrs["scalar"])
        params = {name: t * k for name, t in conv.params.items()}
        replaced[conv.name] = dataclasses.replace(conv, params=params)
        absorbed[mul.name] = chain[0].name
    return graph.absorb(absorbed, replaced), len(absorbed)


def fuse(graph: Graph) -> Graph:
    graph, relus = _fuse_relu(graph)
    graph, scales = _fold_output_scale(graph)
    notes = dict(graph.meta.get("pass_notes", {}))
    notes["fuse"] = f"fused {relus} relu into conv2d/add; folded {scales} output scale into conv weights"
    return graph.replace_nodes(graph.nodes, meta={**graph.meta, "pass_notes": notes})
