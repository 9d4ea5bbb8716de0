"""Run any IR graph in fp32 PyTorch: the numerical reference for every pass and for generated code.

Each op runs its descriptor's reference function (converter/ops). It works on graphs straight from
the front end and after the passes (BatchNorm folded away, conv/add carrying activation="relu"),
because it reads nothing but the IR's own op semantics.
"""

from __future__ import annotations

import torch

from converter.ir import Graph
from converter.ops import is_input, op_kind


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
        if is_input(node):
            values[node.name] = x.to(torch.float32)
            continue
        reference = op_kind(node).reference
        assert reference is not None, "every op but the model input has a reference"
        values[node.name] = reference(node, *(values[i] for i in node.inputs))
        for i in set(node.inputs):  # free activations nobody reads any more (full size is ~GBs)
            if last_use[i] == k and i not in keep:
                del values[i]
    return {key: values[name] for key, name in wanted.items()}
