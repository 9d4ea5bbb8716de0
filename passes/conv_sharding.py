"""ANALYSIS + TRANSFORM: choose each conv's sharding, slicing and blocking (OpPlan.conv).

Preferred sharding from the conv's shape (like ttnn's auto-shard heuristic, but always explicit):
- HEIGHT when output pixels dominate channels: N*H*W / max(C_in, C_out) >= number of cores
  (each core then gets at least as many rows as there are channels: early, high-resolution convs);
- WIDTH when there are too few output rows to split over the grid's rows (N*H*W < 32 * grid_y, e.g.
  the ASPP image-pooling 1x1 conv) : only channels can be split;
- BLOCK otherwise (low resolution with many channels, e.g. res4/res5, ASPP at 1/16).

Fallback ladder, first rung that fits wins (what "fits" counts: input shard + halo + output shard +
CBs per core <= the target's L1 budget; weights stay in DRAM, only their CB blocks are in L1):
  L1_FULL (double-buffered, then single-buffered, then smaller act_block_h),
  then the other shardings in L1,
  then DRAM_SLICE_WIDTH with 2, 4, 8, ... slices, then DRAM_SLICE_HEIGHT, each again with smaller
  act_block_h. Smaller act_block_h is tried inside each rung because it is the cheapest way to save
  L1 (it only shortens the matmul blocks), while DRAM slicing costs DRAM traffic.
The chosen rung and why it was needed are recorded in ConvConfig.rung.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

from converter.errors import UserError
from converter.ir import Graph, Node
from passes import cb_model
from passes.overrides import LayerOverride, Overrides
from passes.plan import ConvConfig, Placement
from passes.shards import cdiv, cores_with_padding, l1_bytes_per_core, largest_divisor, shard_shape
from passes.targets import DEFAULT_L1_SMALL_SIZE, TILE, Target

LAYOUTS = ("HEIGHT_SHARDED", "BLOCK_SHARDED", "WIDTH_SHARDED")


@dataclass(frozen=True)
class ConvShape:
    batch: int
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @classmethod
    def of(cls, node: Node, input_shape: tuple[int, ...]) -> ConvShape:
        a = node.attrs
        return cls(input_shape[0], (input_shape[2], input_shape[3]), (node.out.shape[2], node.out.shape[3]),
                   a["in_channels"], a["out_channels"], tuple(a["kernel_size"]), tuple(a["stride"]),
                   tuple(a["padding"]), tuple(a["dilation"]), a["groups"])

    @property
    def in_rows(self) -> int:
        return self.batch * self.input_hw[0] * self.input_hw[1]

    @property
    def out_rows(self) -> int:
        return self.batch * self.output_hw[0] * self.output_hw[1]

    def geometry(self) -> dict:
        return dict(batch=self.batch, input_hw=self.input_hw, kernel_size=self.kernel_size, stride=self.stride,
                    padding=self.padding, dilation=self.dilation)


def preferred_layout(s: ConvShape, target: Target) -> tuple[str, str]:
    c = max(s.in_channels, s.out_channels)
    if s.out_rows >= c * target.num_cores:
        return "HEIGHT_SHARDED", f"N*H*W {s.out_rows} >= {target.num_cores} cores x C {c}"
    if s.out_rows < TILE * target.grid[1]:
        return "WIDTH_SHARDED", f"N*H*W {s.out_rows} < {TILE * target.grid[1]}: too few rows for the grid"
    return "BLOCK_SHARDED", f"N*H*W {s.out_rows} vs C {c}: split both"


def conv_cores(layout: str, s: ConvShape, target: Target) -> tuple[tuple[int, int], int]:
    """(grid, num_cores) ttnn would use for this sharding (its parallel-config rules)."""
    gx, gy = target.grid
    if layout == "HEIGHT_SHARDED":
        return target.grid, cores_with_padding(cdiv(s.out_rows, TILE), target.num_cores)
    if layout == "BLOCK_SHARDED":
        c_tiles = cdiv(min(s.in_channels, s.out_channels), TILE)
        x = largest_divisor(c_tiles, gx)
        y = cores_with_padding(cdiv(s.out_rows, TILE), gy)
        return (x, y), x * y
    return target.grid, largest_divisor(cdiv(s.in_channels, TILE), target.num_cores)


def activation_placement(layout: str, grid: tuple[int, int], num_cores: int, rows: int, cols: int) -> Placement:
    return Placement("L1", layout, grid, num_cores, shard_shape(layout, rows, cols, grid, num_cores))


def conv_input_placement(node: Node, s: ConvShape) -> Placement:
    """Where the conv wants its input: sharded like the conv in L1, or DRAM when sliced."""
    c = node.plan.conv
    if c.slice_type != "L1_FULL":
        return Placement("DRAM", "INTERLEAVED")
    return activation_placement(c.shard_layout, c.grid, c.num_cores, s.in_rows, s.in_channels)


def conv_output_placement(node: Node, s: ConvShape) -> Placement:
    c = node.plan.conv
    if c.slice_type != "L1_FULL":
        return Placement("DRAM", "INTERLEAVED")
    return activation_placement(c.shard_layout, c.grid, c.num_cores, s.out_rows, s.out_channels)


def working_set(s: ConvShape, node: Node, target: Target, layout: str, grid: tuple[int, int], num_cores: int,
                slice_type: str, num_slices: int, act_block_h: int, double_buffer: bool,
                act_block_w_div: int = 1) -> tuple[int, int]:
    """(total per-core L1 of the conv, its CB part): input shard + halo + output shard + CBs."""
    plan = node.plan
    in_dtype = out_dtype = plan.dtype
    cbs = cb_model.conv2d_cb_bytes(
        **s.geometry(), in_channels=s.in_channels, out_channels=s.out_channels, groups=s.groups,
        shard_layout=layout, grid=grid, num_cores=num_cores, act_block_h=act_block_h,
        act_block_w_div=act_block_w_div, input_dtype=in_dtype, weights_dtype=plan.weights_dtype,
        output_dtype=out_dtype, enable_act_double_buffer=double_buffer,
        enable_weights_double_buffer=double_buffer, fp32_dest_acc=plan.fp32_dest_acc, num_slices=num_slices)
    halo = cb_model.halo_bytes(**s.geometry(), channels=s.in_channels, shard_layout=layout, grid=grid,
                               num_cores=num_cores, dtype=in_dtype, num_slices=num_slices)
    k = max(num_slices, 1)
    p_in = activation_placement(layout, grid, num_cores, cdiv(s.in_rows, k), s.in_channels)
    p_out = activation_placement(layout, grid, num_cores, cdiv(s.out_rows, k), s.out_channels)
    total = (l1_bytes_per_core(p_in, cdiv(s.in_rows, k), s.in_channels, in_dtype, target)
             + halo + l1_bytes_per_core(p_out, cdiv(s.out_rows, k), s.out_channels, out_dtype, target) + cbs)
    return total, cbs


def _act_block_hs(s: ConvShape, layout: str, grid: tuple[int, int], num_cores: int, num_slices: int) -> list[int]:
    """0 (ttnn's maximum), then halving block heights down to one tile."""
    per_core = cdiv(cdiv(cdiv(s.out_rows, max(num_slices, 1)), TILE),
                    cb_model.core_split(layout, grid, num_cores)[0])
    out, t = [0], 1
    while t < per_core:
        out.insert(1, t * TILE)
        t *= 2
    return out


def _slicings(s: ConvShape) -> Iterator[tuple[str, int]]:
    yield "L1_FULL", 0
    for kind, extent in (("DRAM_SLICE_WIDTH", s.output_hw[1]), ("DRAM_SLICE_HEIGHT", s.output_hw[0])):
        n = 2
        while n <= extent:
            yield kind, n
            n *= 2


def choose_conv_config(node: Node, s: ConvShape, target: Target, budget: int,
                       pin: LayerOverride | None = None) -> ConvConfig:
    preferred, why = preferred_layout(s, target)
    layouts = [preferred] + [lay for lay in LAYOUTS if lay != preferred]
    if pin and pin.sharding:
        layouts, why = [pin.sharding], "override"
    slicings = list(_slicings(s))
    if pin and pin.slice_type:
        slicings = [(pin.slice_type, pin.num_slices)]
    first_miss = ""
    for slice_type, num_slices in slicings:
        for layout in layouts:
            grid, cores = conv_cores(layout, s, target)
            abhs = [pin.act_block_h] if pin and pin.act_block_h is not None else _act_block_hs(s, layout, grid, cores, num_slices)
            for abh in abhs:
                for dbl in ((True, False) if slice_type == "L1_FULL" and abh == 0 else (False,)):
                    total, cbs = working_set(s, node, target, layout, grid, cores, slice_type, num_slices, abh, dbl)
                    if total > budget:
                        if not first_miss:
                            first_miss = f"; {slice_type} {layout} needed {total} B > budget {budget} B"
                        continue
                    rung = f"{slice_type}{f' x{num_slices}' if num_slices else ''} {layout} ({why})"
                    rung += f", act_block_h {abh or 'max'}, {total} B/core" + first_miss
                    return ConvConfig(layout, slice_type, num_slices, abh, 1, dbl, dbl, cbs, rung,
                                      grid, cores, total)
    pinned = f" with the pinned {pin}" if pin else ""
    raise UserError(f"conv {node.name!r} ({node.source}) cannot fit L1{pinned}: remove or relax its override")


def conv_sharding(graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE,
                  overrides: Overrides | None = None) -> Graph:
    budget = target.l1_budget(l1_small_size)
    shapes = {n.name: n.out.shape for n in graph.nodes}
    nodes = []
    for n in graph.nodes:
        if n.op == "conv2d":
            if n.plan is None:
                raise ValueError(f"conv_sharding needs dtype_policy first ({n.name})")
            conv = choose_conv_config(n, ConvShape.of(n, shapes[n.inputs[0]]), target, budget,
                                      overrides.for_node(n) if overrides else None)
            plan = dataclasses.replace(n.plan, conv=conv, notes=n.plan.notes + (f"conv: {conv.rung}",))
            n = dataclasses.replace(n, plan=plan)
        nodes.append(n)
    return graph.replace_nodes(nodes)
