"""ANALYSIS + TRANSFORM: run sibling convs as one wider conv where the cost model says it pays.

Siblings are convs that read the same tensor with the same geometry (kernel, stride, padding,
dilation, activation): Panoptic-DeepLab's two heads each run an ASPP on res5, five convs per head on
one tensor. One conv writing [a | b] channels reads its input once, is one device program instead of
two and can fill cores that one 256-channel conv leaves idle (a width-sharded conv splits its output
channels over the cores: 8 tiles on a 16-core grid use half of it).

The readers of each member then read the wider tensor: through channel-wise ops (relu, upsample) and
concats, which widen with it, to convs, whose weights are zero-padded to the wider input (exact: a zero
weight adds nothing, also in bfloat8_b, whose shared exponents span output channels; the conv records
the merged convs it reads in `reads_merged`, for the generated code's comments). A member read by
anything else (an add, a head output) is not merged. After the rewrite, identical nodes collapse
(common subexpressions: both heads' image pooling of res5, and their concats once every branch merged).

Analysis: for each sibling group, the modeled time (passes/cost_model.py, each conv at its cheapest legal
config with the whole L1) of the members plus the convs that read them, against the merged conv plus the
zero-padded readers. A merged conv runs at the strictest precision of its members (highest fidelity,
widest dtypes), so merging a LoFi conv with a HiFi2 one can lose; the model decides. Members pinned by
an override keep their own layer. Runs after dtype_policy (precision is part of the cost).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import torch

from converter.errors import UserError
from converter.ir import Graph, Node, TensorInfo
from converter.ops import Memory, is_conv, is_host, op_kind
from hardware.targets import DEFAULT_L1_SMALL_SIZE, Target
from passes.contracts import cse_key
from passes.conv_sharding import choose_conv_config, conv_input_placement
from passes.cost_model import Operand, op_cost
from passes.dtype_policy import one_dtype_per_concat
from passes.overrides import Overrides
from passes.plan import DTYPES, MATH_FIDELITIES, DeviceDtype, OpPlan, plan_of, stored_dtype
from passes.shards import ConvShape

_WIDTH = {d: i for i, d in enumerate(reversed(DTYPES))}  # bfloat8_b < bfloat16 < float32


def _geometry(n: Node) -> tuple:
    a = n.attrs
    return (
        n.inputs[0],
        a["kernel_size"],
        a["stride"],
        a["padding"],
        a["dilation"],
        a["activation"],
        "bias" in n.params,
    )


def _strictest(plans: list[OpPlan]) -> OpPlan:
    return OpPlan(
        dtype=max((p.dtype for p in plans), key=_WIDTH.__getitem__),
        weights_dtype=max((p.weights_dtype or DeviceDtype.BFLOAT8_B for p in plans), key=_WIDTH.__getitem__),
        math_fidelity=max((p.math_fidelity for p in plans), key=MATH_FIDELITIES.index),
        fp32_dest_acc=any(p.fp32_dest_acc for p in plans),
        notes=("dtype: strictest of the merged convs",),
    )


def merged_name(names: list[str], taken: frozenset[str] | set[str] = frozenset()) -> str:
    """'merged.' + the dotted suffix the names share (e.g. merged.decoder.res5.project_conv.convs.3), or
    all the names when they share none; numbered if a node of `taken` already has that name."""
    parts = [n.split(".") for n in names]
    common: list[str] = []
    for segs in zip(*(reversed(p) for p in parts), strict=False):
        if len(set(segs)) > 1:
            break
        common.insert(0, segs[0])
    name = "merged." + (".".join(common) if common else "+".join(names))
    base, i = name, 2
    while name in taken:
        name, i = f"{base}.{i}", i + 1
    return name


def merge_group(graph: Graph, members: list[Node]) -> tuple[Graph, Node, list[Node]] | None:
    """`graph` with the sibling convs `members` run as one conv (named by `merged_name`) and their
    readers widened; that conv; the convs that now read a wider tensor. None if a reader cannot widen."""
    return _Rewrite(graph, members).run()


class _Rewrite:
    def __init__(self, graph: Graph, members: list[Node]):
        self.graph, self.members = graph, members
        self.by_name = {n.name: n for n in graph.nodes}
        # values that must keep their name and width: the graph outputs, and the taps --verify compares
        # with Detectron2's modules
        self.heads = set(graph.outputs.values()) | set(dict(graph.meta.get("taps", {})).values())

    def merged(self) -> Node:
        m = self.members
        params = {k: torch.cat([n.params[k] for n in m]) for k in m[0].params}
        attrs = {**m[0].attrs, "out_channels": sum(n.attrs["out_channels"] for n in m)}
        shape = (*m[0].out.shape[:1], attrs["out_channels"], *m[0].out.shape[2:])
        plan = _strictest([plan_of(n) for n in m])
        taken = set(self.by_name) - {n.name for n in m}
        return Node(
            merged_name([n.name for n in m], taken),
            "conv2d",
            m[0].inputs,
            TensorInfo(shape, m[0].out.dtype),
            " + ".join(n.source for n in m),
            attrs,
            params,
            plan,
        )

    def run(self) -> tuple[Graph, Node, list[Node]] | None:
        members = {n.name for n in self.members}
        if members & self.heads:
            return None
        merged = self.merged()
        # value name -> (the node that now carries it, its channels' indices in that node's output)
        view: dict[str, tuple[str, list[int]]] = {}
        offset = 0
        for n in self.members:
            c = n.attrs["out_channels"]
            view[n.name] = (merged.name, list(range(offset, offset + c)))
            offset += c
        widths = {merged.name: offset}
        new: dict[str, Node] = {}
        readers: list[Node] = []
        for n in self.graph.nodes:
            if n.name in members or not any(i in view for i in n.inputs):
                continue
            kind = op_kind(n)
            if (kind.channelwise or kind.memory is Memory.CONCAT) and n.name in self.heads:
                return None  # a graph output cannot change width
            if kind.channelwise:
                src, idx = view[n.inputs[0]]
                new[n.name] = _widen(n, (src,), widths[src])
                view[n.name] = (n.name, idx)
            elif kind.memory is Memory.CONCAT:
                ins, idx, width = [], [], 0
                for i in n.inputs:
                    src, sel = view.get(i, (i, list(range(self.by_name[i].out.shape[1]))))
                    ins.append(src)
                    idx += [width + j for j in sel]
                    width += widths[src] if src in widths else self.by_name[src].out.shape[1]
                new[n.name] = _widen(n, tuple(ins), width)
                view[n.name] = (n.name, idx)
            elif kind.memory is Memory.CONV and n.attrs["groups"] == 1:
                src, idx = view[n.inputs[0]]
                w = n.params["weight"]
                padded = w.new_zeros((w.shape[0], widths[src], *w.shape[2:]))
                padded[:, idx] = w
                attrs = {
                    **n.attrs,
                    "in_channels": widths[src],
                    "reads_merged": (*n.attrs.get("reads_merged", ()), merged.name),
                }
                new[n.name] = dataclasses.replace(n, inputs=(src,), attrs=attrs, params={**n.params, "weight": padded})
                readers.append(new[n.name])
                continue
            else:  # an add, a head output, ...: cannot read a wider tensor
                return None
            widths[n.name] = new[n.name].out.shape[1]
        nodes = [
            merged if n.name == self.members[0].name else new.get(n.name, n)
            for n in self.graph.nodes
            if n.name not in members or n.name == self.members[0].name
        ]
        return self.graph.replace_nodes(nodes), merged, readers


def _widen(n: Node, inputs: tuple[str, ...], channels: int) -> Node:
    return dataclasses.replace(
        n, inputs=inputs, out=TensorInfo((n.out.shape[0], channels, *n.out.shape[2:]), n.out.dtype)
    )


def eliminate_common(graph: Graph) -> Graph:
    """Nodes without parameters that repeat an earlier node (op, inputs, attributes, precision) read
    that node instead; a survivor standing for nodes of several modules is renamed for all of them."""
    first: dict[tuple, Node] = {}
    dupes: dict[str, list[Node]] = defaultdict(list)
    for n in graph.nodes:
        if n.params or is_host(n):
            continue
        k = cse_key(n)
        if k in first:
            dupes[first[k].name].append(n)
        else:
            first[k] = n
    if not dupes:
        return graph
    rename: dict[str, str] = {}
    taken = {n.name for n in graph.nodes}
    for keep, others in dupes.items():
        names = [keep] + [o.name for o in others]
        target = merged_name(names, taken - set(names)) if not keep.startswith("merged.") else keep
        taken.add(target)
        for name in names:
            rename[name] = target
    survivors = set(dupes)
    nodes = []
    for n in graph.nodes:
        if n.name in rename and n.name not in survivors:
            continue
        inputs = tuple(rename.get(i, i) for i in n.inputs)
        if n.name in survivors:
            sources = [n.source] + [o.source for o in dupes[n.name]]
            n = dataclasses.replace(n, name=rename[n.name], inputs=inputs, source=" + ".join(dict.fromkeys(sources)))
        elif inputs != n.inputs:
            n = dataclasses.replace(n, inputs=inputs)
        nodes.append(n)
    meta = graph.meta
    if "taps" in meta:
        meta = {**meta, "taps": {k: rename.get(v, v) for k, v in meta["taps"].items()}}
    return eliminate_common(
        graph.replace_nodes(nodes, outputs={k: rename.get(v, v) for k, v in graph.outputs.items()}, meta=meta)
    )


def _standalone_us(n: Node, nodes: dict[str, Node], target: Target, budget: int) -> float:
    """A conv at its cheapest legal config with the whole L1, its input arriving where it wants it
    (infinite if nothing fits)."""
    x = nodes[n.inputs[0]]
    dtype = stored_dtype(x.name, nodes)
    readers = tuple(r.op for r in nodes.values() if n.name in r.inputs)
    try:
        conv = choose_conv_config(n, x.out, dtype, None, target, budget, reader_ops=readers)
    except UserError:
        return math.inf
    plan = dataclasses.replace(plan_of(n), conv=conv)
    wants = conv_input_placement(dataclasses.replace(n, plan=plan), ConvShape.of(n, x.out.shape))
    return op_cost(n, plan, target, [Operand(x.out.shape, dtype, wants)]).total_us


def merge_siblings(
    graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE, overrides: Overrides | None = None
) -> Graph:
    budget = target.l1_budget(l1_small_size)
    merged = 0
    decisions: list[str] = []
    while True:
        groups: dict[tuple, list[Node]] = defaultdict(list)
        for n in graph.nodes:
            if is_conv(n) and n.attrs["groups"] == 1 and not (overrides and overrides.for_node(n)):
                groups[_geometry(n)].append(n)
        by_name = {n.name: n for n in graph.nodes}
        done = False
        for members in (g for g in groups.values() if len(g) > 1):
            rewrite = merge_group(graph, members)
            if rewrite is None:
                continue
            new_graph, m, readers = rewrite
            old_readers = [by_name[r.name] for r in readers]
            new_by_name = {n.name: n for n in new_graph.nodes}
            before = sum(_standalone_us(n, by_name, target, budget) for n in members + old_readers)
            after = sum(_standalone_us(n, new_by_name, target, budget) for n in [m] + readers)
            if after >= before:
                continue
            decisions.append(f"{m.name}: {before:.0f} -> {after:.0f} us")
            graph = eliminate_common(one_dtype_per_concat(new_graph))
            merged += 1
            done = True
            break
        if not done:
            break
    notes = dict(graph.meta.get("pass_notes", {}))
    notes["merge_siblings"] = f"merged {merged} sibling conv groups" + (
        f" ({'; '.join(decisions)})" if decisions else ""
    )
    return graph.replace_nodes(graph.nodes, meta={**graph.meta, "pass_notes": notes})
