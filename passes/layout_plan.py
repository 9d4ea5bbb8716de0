"""TRANSFORM: choose each tensor's ttnn layout (TILE / ROW_MAJOR) and the conversions ops need.

Fills `OpPlan.layout` (the op's output layout) and `OpPlan.layout_inputs` (inputs read through a
`ttnn.to_layout` temporary). Memory planning counts those temporaries like any other allocation, and
the code generator emits exactly what is recorded here. The rules follow what ttnn 0.81.1 accepts:
- upsample reads ROW_MAJOR (its output keeps its input's layout); resample reads and writes ROW_MAJOR;
- elementwise ops (add, multiply, relu) read TILE; concat needs all inputs in one layout;
- convs read either, but one run as a matmul (1x1, stride 1) reads TILE: ttnn would tilize a ROW_MAJOR
  input into a copy of its own that no plan sees (real ttnn ran out of L1 on the sliding ASPP
  pooling's conv at 1024x2048 for it); a conv writes ROW_MAJOR (`Conv2dConfig.output_layout`) only when every reader
  is an upsample or a concat, it is not run as a matmul (1x1 convs ignore output_layout), its dtype has a ROW_MAJOR
  form (no bfloat8_b), and its rows fill whole
  tiles: a ROW_MAJOR tensor's physical height is its row count, and width/block shards must match it
  (a 1x1-spatial ASPP pooling output has 1 row, its shards 32);
- pools and global average pooling write TILE; the model input is ROW_MAJOR when only convs read it.
A ROW_MAJOR tensor's width is its channel count, unpadded: its height shards are exactly that wide
(`shards.physical`), while TILE shards are padded to whole tiles.
"""

from __future__ import annotations

import dataclasses

from converter.ir import Graph, Node
from converter.ops import Layout, Memory, Writes, op_kind
from hardware.targets import TILE
from passes.cb_model import conv_is_matmul
from passes.plan import ROW_MAJOR, TILE_LAYOUT, conv_of, plan_of
from passes.shards import rows_cols

# readers a conv may hand a ROW_MAJOR output to directly
_ROW_MAJOR_READERS = (Memory.UPSAMPLE, Memory.CONCAT)


def _matmul(n: Node, shard_layout: str) -> bool:
    a = n.attrs
    return conv_is_matmul(
        kernel_size=a["kernel_size"],
        stride=a["stride"],
        padding=a["padding"],
        dilation=a["dilation"],
        shard_layout=shard_layout,
        groups=a["groups"],
    )


def conv_output_layout(n: Node, reader_ops: list[str], shard_layout: str) -> Layout:
    """The layout a conv writes, given its readers' ops and its sharding (conv sharding asks this
    before choosing: ttnn allows more width slices for a ROW_MAJOR output)."""
    rows, cols = rows_cols(n.out)
    row_major = (
        reader_ops
        and all(op_kind(op).memory in _ROW_MAJOR_READERS for op in reader_ops)
        and not _matmul(n, shard_layout)
        and plan_of(n).dtype != "bfloat8_b"
        and rows % TILE == 0
        and (shard_layout == "HEIGHT_SHARDED" or cols % TILE == 0)
    )
    return ROW_MAJOR if row_major else TILE_LAYOUT


def _output_layout(
    n: Node, by_name: dict[str, Node], users: dict[str, list[str]], layout: dict[str, Layout], reads: dict[str, Layout]
) -> Layout:
    writes = op_kind(n).writes
    if writes is Writes.IMAGE:
        readers = [op_kind(by_name[u]).memory for u in users[n.name]]
        return ROW_MAJOR if readers and all(r is Memory.CONV for r in readers) else TILE_LAYOUT
    if writes is Writes.CONV:
        if conv_of(n).channel_slices > 1:  # its parts are summed or concatenated as tiles
            return TILE_LAYOUT
        return conv_output_layout(n, [by_name[u].op for u in users[n.name]], conv_of(n).shard_layout)
    if writes is Writes.AS_READ:
        return reads[n.name]
    if writes is Writes.AS_INPUT:
        return layout[n.inputs[0]]
    return Layout(writes.value)


def layout_plan(graph: Graph) -> Graph:
    users = graph.users()
    by_name = {n.name: n for n in graph}
    layout: dict[str, Layout] = {}
    reads: dict[str, Layout] = {}
    out = []
    for n in graph:
        kind = op_kind(n)
        if kind.writes is Writes.AS_READ:  # one layout for all inputs: theirs if they agree
            ins = {layout[i] for i in n.inputs}
            reads[n.name] = ins.pop() if len(ins) == 1 else TILE_LAYOUT
        elif kind.reads is not None:
            reads[n.name] = kind.reads
        elif kind.writes is Writes.CONV and _matmul(n, conv_of(n).shard_layout):
            reads[n.name] = TILE_LAYOUT
        layout[n.name] = _output_layout(n, by_name, users, layout, reads)
        want = reads.get(n.name)
        conversions = tuple(dict.fromkeys((i, want) for i in n.inputs if want is not None and layout[i] != want))
        out.append(
            dataclasses.replace(
                n, plan=dataclasses.replace(plan_of(n), layout=layout[n.name], layout_inputs=conversions)
            )
        )
    return graph.replace_nodes(out)
