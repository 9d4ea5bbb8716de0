"""The compiler's graph IR: a small, explicit, typed graph of the model's inference core.

One `Node` per operation, in program order (a valid topological order, and the order the generated
code executes). Each node carries its output `TensorInfo` (from shape propagation), the parameter
tensors it owns, the Detectron2 module path it came from, and, once the passes have run, one typed
`OpPlan` record (passes/plan.py) with every device decision taken for it. Passes never mutate a
graph: they return a new one (`Graph.replace_nodes`, `dataclasses.replace`).

Tensor shapes are logical NCHW, as in PyTorch. Device layout (NHWC flattened to [1, 1, N*H*W, C])
is a lowering concern decided by the passes and the code generator, not by the IR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from converter.ops import REGISTRY

if TYPE_CHECKING:  # torch only for annotations: importing the IR stays cheap (the CLI's parser needs it)
    import torch


@dataclass(frozen=True)
class TensorInfo:
    """What shape propagation knows about a node's output."""

    shape: tuple[int, ...]  # logical NCHW
    dtype: str = "float32"  # torch dtype name; device dtypes live in OpPlan

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Node:
    name: str  # unique, stable across runs, derived from `source` (e.g. "backbone.res2.0.conv1")
    op: str  # a registered op kind (converter/ops: what each op is, its attributes and semantics)
    inputs: tuple[str, ...]  # names of the producer nodes, in argument order
    out: TensorInfo
    source: str  # Detectron2 module path it came from, e.g. "sem_seg_head.decoder.res3.fuse_conv.0"
    attrs: dict[str, Any] = field(default_factory=dict)  # plain values: int, float, str, bool, tuples
    params: dict[str, torch.Tensor] = field(default_factory=dict)  # fp32 tensors it owns
    # every device decision for this op, set by the passes: a passes.plan.OpPlan (read through
    # passes.plan.plan_of), typed there because the IR sits below the passes
    plan: object | None = None


class IRError(ValueError):
    """A graph that breaks an IR invariant (a compiler bug, or a hand-built graph in a test)."""


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]  # program order
    outputs: dict[str, str]  # head name ("sem_seg", "center", "offset") -> producing node name
    meta: dict[str, Any] = field(default_factory=dict)  # variant, input size, config, host steps

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.op not in REGISTRY:
                raise IRError(f"unknown op {node.op!r} in node {node.name!r} ({node.source})")
            missing = [a for a in REGISTRY[node.op].attrs if a not in node.attrs]
            if missing:
                raise IRError(f"node {node.name!r} ({node.op}) lacks attributes {missing}")
            if node.name in seen:
                raise IRError(f"duplicate node name {node.name!r}")
            for i in node.inputs:
                if i not in seen:
                    raise IRError(f"node {node.name!r} reads {i!r} before it is produced")
            seen.add(node.name)
        for head, name in self.outputs.items():
            if name not in seen:
                raise IRError(f"output {head!r} names unknown node {name!r}")

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def users(self) -> dict[str, list[str]]:
        """Node name -> names of the nodes that read it, in program order."""
        users: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                users[i].append(n.name)
        return users

    def replace_nodes(self, nodes: list[Node] | tuple[Node, ...], **changes: Any) -> Graph:
        return dataclasses.replace(self, nodes=tuple(nodes), **changes)

    def absorb(self, absorbed: dict[str, str], replaced: dict[str, Node]) -> Graph:
        """Drop the `absorbed` nodes (each -> the node that now produces its value), make their readers,
        the outputs and the debugging taps read that node instead, and swap in the `replaced` nodes."""
        nodes = []
        for n in self.nodes:
            if n.name in absorbed:
                continue
            n = replaced.get(n.name, n)
            if any(i in absorbed for i in n.inputs):
                n = dataclasses.replace(n, inputs=tuple(absorbed.get(i, i) for i in n.inputs))
            nodes.append(n)
        meta = self.meta
        if "taps" in meta:
            meta = {**meta, "taps": {k: absorbed.get(v, v) for k, v in meta["taps"].items()}}
        return self.replace_nodes(nodes, outputs={k: absorbed.get(v, v) for k, v in self.outputs.items()}, meta=meta)

    def histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self.nodes:
            hist[n.op] = hist.get(n.op, 0) + 1
        return dict(sorted(hist.items()))
