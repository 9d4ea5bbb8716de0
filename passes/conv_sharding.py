"""ANALYSIS + TRANSFORM: choose each conv's sharding, slicing and blocking (OpPlan.conv) by cost.

Analysis: enumerate the legal configurations, i.e. every (slicing, sharding) whose working set fits
the target's L1 budget by cb_model (input shard + halo + output shard + CBs per core; weights stay in
DRAM, only their CB blocks are in L1). The input side is sized in the dtype of the tensor the conv
reads, not the conv's own: a bfloat8_b conv may read bfloat16, and a DRAM slice is staged row-major
(2 bytes per element even from bfloat8_b), as memory planning's address-level check sizes it.
Slicings: L1_FULL, DRAM_SLICE_WIDTH and DRAM_SLICE_HEIGHT with 2, 4, 8, ... slices. A conv none of
whose configs fits is tried as 2, 4 or 8 partial convs over as many input-channel groups (channel
slicing: each group sliced out of the DRAM input, the partial results summed in DRAM, or a grouped
conv's parts concatenated), fewest groups first: a group's halo and input blocks are a k-th of the
whole conv's. A spatial conv whose preferred sharding fits only DRAM-sliced also gets the fewest
groups that fit L1-resident as candidates (the ASPP's dilated convs, as Tenstorrent runs its
dilation-18 one). Within one (slicing, sharding) the blocking is the largest that fits: act_block_h 0
(ttnn's maximum) with double buffering, then without, then halving block heights down to one tile.
Smaller blocks and single buffering only save L1, which the cost model does not price, so once a
larger block fits a smaller one can only be slower on the device.

Transform: rank the candidates by `passes.cost_model.op_cost` (the conv with its input arriving
where its producer put it, moved if the conv wants it elsewhere, and its output where the conv
writes it) and pick the cheapest; ties go to candidate order: preferred sharding first (the shape
rule below, like ttnn's auto-shard heuristic), L1 before DRAM slicing, fewer slices first.
ConvConfig.why records the choice, its modeled time, the runner-up and why L1_FULL was not used.

Preferred sharding from the conv's shape (only a tie-break now):
- HEIGHT when output pixels dominate channels: N*H*W / max(C_in, C_out) >= number of cores;
- WIDTH when there are too few output rows to split over the grid's rows (N*H*W < 32 * grid_y);
- BLOCK otherwise (low resolution with many channels, e.g. res4/res5, ASPP at 1/16).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from converter.errors import UserError
from converter.ir import Graph, Node, TensorInfo
from converter.ops import ELTWISE, is_conv, is_input, op_kind
from hardware.targets import DEFAULT_L1_SMALL_SIZE, TILE, Target
from passes import cb_model
from passes.cb_model import cdiv
from passes.cost_model import Operand, op_cost
from passes.layout_plan import conv_output_layout
from passes.overrides import LayerOverride, Overrides
from passes.plan import (
    DRAM_INTERLEAVED,
    Buffer,
    ConvConfig,
    MemoryLayout,
    Placement,
    SliceType,
    conv_of,
    plan_of,
    stored_dtype,
)
from passes.shards import (
    ConvShape,
    cores_with_padding,
    l1_bytes_per_core,
    largest_divisor,
    shard_shape,
    staged_input_bytes,
)

LAYOUTS = ("HEIGHT_SHARDED", "BLOCK_SHARDED", "WIDTH_SHARDED")
DRAM = DRAM_INTERLEAVED


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


def slow_to_build(s: ConvShape, layout: str, grid: tuple[int, int], slice_type: str, target: Target) -> bool:
    """ttnn 0.81.1 takes seconds of host time to build a DRAM-sliced strided conv block-sharded on fewer
    columns than the device has (its slices' reshard page map; benchmarks/probe_conv_build.py: 26 s for
    res3.0.shortcut on 4 of 5 columns, 0.2 s on all 5 or height-sharded). A process pays it at its first
    forward and the real-ttnn check at every run, for microseconds of modeled device time."""
    return slice_type != "L1_FULL" and layout == "BLOCK_SHARDED" and max(s.stride) > 1 and grid[0] < target.grid[0]


def activation_placement(layout: str, grid: tuple[int, int], num_cores: int, rows: int, cols: int) -> Placement:
    return Placement(Buffer.L1, MemoryLayout(layout), grid, num_cores, shard_shape(layout, rows, cols, grid, num_cores))


def conv_input_placement(node: Node, s: ConvShape) -> Placement:
    """Where the conv wants its input: sharded like the conv in L1, or DRAM when sliced (also by
    ttnn itself, or by input channels: both read the DRAM input)."""
    c = conv_of(node)
    if c.slice_type != "L1_FULL" or c.auto_slicing or c.channel_slices > 1:
        return DRAM
    assert c.grid is not None, "conv sharding always chooses the cores"
    return activation_placement(c.shard_layout, c.grid, c.num_cores, s.in_rows, s.in_channels)


def conv_output_placement(node: Node, s: ConvShape) -> Placement:
    c = conv_of(node)
    if c.slice_type != "L1_FULL" or c.auto_slicing or c.channel_slices > 1:
        return DRAM
    assert c.grid is not None, "conv sharding always chooses the cores"
    return activation_placement(c.shard_layout, c.grid, c.num_cores, s.out_rows, s.out_channels)


def working_set(
    s: ConvShape,
    node: Node,
    target: Target,
    layout: str,
    grid: tuple[int, int],
    num_cores: int,
    slice_type: str,
    num_slices: int,
    act_block_h: int,
    double_buffer: bool,
    act_block_w_div: int = 1,
    input_dtype: str | None = None,
    output_layout: str = "TILE",
) -> int:
    """The conv's per-core L1: input shard + halo + output shard + CBs.
    `input_dtype` is the dtype the conv reads (its producer's, default the conv's own): a bfloat8_b
    conv often reads a bfloat16 tensor (the model input), twice the bytes of its own dtype."""
    plan = plan_of(node)
    in_dtype, out_dtype = input_dtype or plan.dtype, plan.dtype
    l1 = cb_model.conv2d_l1(
        **s.geometry(),
        in_channels=s.in_channels,
        out_channels=s.out_channels,
        groups=s.groups,
        shard_layout=layout,
        grid=grid,
        num_cores=num_cores,
        act_block_h=act_block_h,
        act_block_w_div=act_block_w_div,
        input_dtype=in_dtype,
        weights_dtype=plan.weights_dtype or "bfloat16",
        output_dtype=out_dtype,
        enable_act_double_buffer=double_buffer,
        enable_weights_double_buffer=double_buffer,
        fp32_dest_acc=plan.fp32_dest_acc,
        num_slices=num_slices,
        device_grid=target.grid,
        slice_type=slice_type,
        output_layout=output_layout,
    )
    k = max(num_slices, 1)
    p_in = activation_placement(layout, grid, num_cores, cdiv(s.in_rows, k), s.in_channels)
    if slice_type == "L1_FULL":  # the input tensor itself, sharded as the conv runs
        in_bytes = l1_bytes_per_core(p_in, s.in_rows, s.in_channels, in_dtype, target)
    else:  # a DRAM slice staged in L1
        assert p_in.shard_shape is not None, "a conv's input is sharded"
        in_bytes = staged_input_bytes(*p_in.shard_shape, in_dtype)
    # the output is ttnn's own L1 shard (also when the layer's output then goes to DRAM)
    return in_bytes + l1.halo + l1.output + l1.cb


def _act_block_hs(s: ConvShape, layout: str, grid: tuple[int, int], num_cores: int, num_slices: int) -> list[int]:
    """0 (ttnn's maximum), then halving block heights down to one tile."""
    per_core = cdiv(cdiv(cdiv(s.out_rows, max(num_slices, 1)), TILE), cb_model.core_split(layout, grid, num_cores)[0])
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


def _describe(c: ConvConfig) -> str:
    groups = f"{c.channel_slices} input-channel groups, " if c.channel_slices > 1 else ""
    return (
        f"{groups}{c.slice_type}{f' x{c.num_slices}' if c.num_slices else ''} {c.shard_layout}"
        f", act_block_h {c.act_block_h or 'max'}{'' if c.enable_act_double_buffer else ', single-buffered'}"
        f", {c.l1_bytes_per_core} B/core"
    )


def splits_into(s: ConvShape, k: int, align: int = TILE) -> bool:
    """Whether the conv runs as `k` partial convs (ConvShape.channel_part) with a multiple of `align`
    input channels per part; a grouped conv's parts also hold whole groups and as aligned outputs."""
    return s.in_channels % (k * align) == 0 and (
        s.groups == 1 or (s.groups % k == 0 and s.out_channels % (k * align) == 0)
    )


def channel_groups(s: ConvShape) -> tuple[int, ...]:
    """The input-channel group counts the planner tries for a conv that fits no other way: whole tiles
    of channels per part (an override may pin others, as Tenstorrent's model splits 288 channels by 4)."""
    return tuple(k for k in (2, 4, 8) if splits_into(s, k))


def legal_configs(
    node: Node,
    s: ConvShape,
    input_dtype: str,
    target: Target,
    budget: int,
    pin: LayerOverride | None = None,
    reader_ops: tuple[str, ...] = (),
    parts: int | None = None,
) -> tuple[list[ConvConfig], str]:
    """Every (slice type, sharding) that fits `budget` with its fewest slices and the largest
    blocking that fits, in candidate order; and why L1_FULL did not fit ("" if it did).
    `input_dtype`: the dtype of the tensor the conv reads; `reader_ops`: the ops reading its output
    (they decide its layout, and ttnn's slicing limits depend on it). `parts`: the conv as that many
    partial convs over input-channel groups; by default the whole conv and, when nothing fits or its
    preferred sharding fits only DRAM-sliced, the fewest groups that fit (L1-resident in the second
    case; module docstring). An override's `channel_slices` fixes the count."""
    if pin and pin.channel_slices:
        parts = pin.channel_slices
        if not splits_into(s, parts, align=1):
            fits = [k for k in range(2, 65) if splits_into(s, k, align=1)]
            raise UserError(
                f"override of conv {node.name!r}: channel_slices {parts} does not split its {s.in_channels} input "
                f"channels{' and its groups' if s.groups > 1 else ''} into equal parts; "
                f"use {', '.join(map(str, fits)) or 'no channel_slices (none does)'}"
            )
    if parts is not None:
        return _legal_configs(node, s, input_dtype, target, budget, pin, reader_ops, parts)
    found, miss = _legal_configs(node, s, input_dtype, target, budget, pin, reader_ops, 1)
    for parts in channel_groups(s) if not found else ():
        found, _ = _legal_configs(node, s, input_dtype, target, budget, pin, reader_ops, parts)
        if found:
            return found, f"{miss}; so run as {parts} partial convs over input-channel groups"
    preferred = preferred_layout(s, target)[0]
    pinned = pin is not None and (pin.slice_type or pin.sharding or pin.act_block_h is not None)
    spatial = s.kernel_size != (1, 1)  # a group's halo is a k-th of the whole conv's
    fits_only_sliced = found and not any(c.shard_layout == preferred and c.slice_type == "L1_FULL" for c in found)
    if spatial and not pinned and fits_only_sliced:  # (found empty: the loop above tried every group)
        # the preferred sharding fits only DRAM-sliced: the fewest input-channel groups that each fit
        # L1-resident compete with it on cost
        for parts in channel_groups(s):
            grouped, _ = _legal_configs(node, s, input_dtype, target, budget, pin, reader_ops, parts)
            resident = [c for c in grouped if c.slice_type == "L1_FULL"]
            if resident:
                return found + resident, miss
    return found, miss


def _legal_configs(
    node: Node,
    s: ConvShape,
    input_dtype: str,
    target: Target,
    budget: int,
    pin: LayerOverride | None,
    reader_ops: tuple[str, ...],
    parts: int,
) -> tuple[list[ConvConfig], str]:
    """legal_configs for the conv run as `parts` partial convs over as many input-channel groups.

    More slices of the same type never model faster (each slice re-reads the weights, adds its
    halo reach, device programs and tile padding), so the fewest that fit stand for their type.
    """
    if parts > 1:  # a channel-sliced conv holds one input-channel group at a time
        s = s.channel_part(parts)
    preferred, why = preferred_layout(s, target)
    layouts = [preferred] + [lay for lay in LAYOUTS if lay != preferred]
    if pin and pin.sharding:
        layouts = [pin.sharding]
    slicings = list(_slicings(s))
    if pin and pin.slice_type == "AUTO":
        # ttnn's count; its slice type (by height below 200 columns, conv2d_utils.cpp) is not reported:
        # both are candidates, the other one for counts the first cannot take
        kinds = ["DRAM_SLICE_HEIGHT", "DRAM_SLICE_WIDTH"][:: 1 if s.input_hw[1] < 200 else -1]
        slicings = [(k, pin.num_slices) for k in kinds] if pin.num_slices else [("L1_FULL", 0)]
        if pin.num_slices:  # real ttnn chose this count because it fits: our conservative L1 model does not veto it
            budget = 1 << 40
    elif pin and pin.slice_type:
        slicings = [(pin.slice_type, pin.num_slices or 0)]
    found, miss = [], ""
    least: tuple[int, str] | None = None  # the smallest working set that did not fit, for the error
    rejected = ""  # why real ttnn would reject the first candidate it rejects
    fitted: set[tuple[str, str]] = set()  # (slice type, layout) pairs that already fit
    for slice_type, num_slices in slicings:
        for layout in layouts:
            if (slice_type, layout) in fitted:
                continue
            grid, cores = conv_cores(layout, s, target)
            if slow_to_build(s, layout, grid, slice_type, target) and not (pin and pin.sharding):
                continue
            if pin and pin.act_block_h is not None:
                abhs = [pin.act_block_h]
            else:
                abhs = _act_block_hs(s, layout, grid, cores, num_slices)
            smallest = 0
            for abh, dbl in (
                (a, d) for a in abhs for d in ((True, False) if slice_type == "L1_FULL" and a == 0 else (False,))
            ):
                out_layout = conv_output_layout(node, list(reader_ops), layout)
                illegal = cb_model.conv2d_illegal(
                    **s.geometry(),
                    in_channels=s.in_channels,
                    out_channels=s.out_channels,
                    groups=s.groups,
                    shard_layout=layout,
                    grid=grid,
                    num_cores=cores,
                    act_block_h=abh,
                    act_block_w_div=1,
                    output_dtype=plan_of(node).dtype,
                    num_slices=num_slices,
                    slice_type=slice_type,
                    output_layout=out_layout,
                )
                if illegal:
                    rejected = rejected or illegal
                    continue
                total = working_set(
                    s,
                    node,
                    target,
                    layout,
                    grid,
                    cores,
                    slice_type,
                    num_slices,
                    abh,
                    dbl,
                    input_dtype=input_dtype,
                    output_layout=out_layout,
                )
                if total <= budget:
                    found.append(
                        ConvConfig(
                            MemoryLayout(layout),
                            SliceType(slice_type),
                            num_slices,
                            abh,
                            1,
                            dbl,
                            dbl,
                            f"preferred {preferred} ({why})" if layout == preferred else "",
                            grid,
                            cores,
                            total,
                        )
                    )
                    fitted.add((slice_type, layout))
                    break
                smallest = total
                if least is None or total < least[0]:
                    least = (
                        total,
                        f"{slice_type}{f' x{num_slices}' if num_slices else ''} {layout}"
                        f" with act_block_h {abh or 'max'}",
                    )
            else:
                if not miss and slice_type == "L1_FULL":
                    miss = f"L1_FULL {layout} needs {smallest} B > budget {budget} B"
    if pin and not found and least is None and rejected:  # the pin leaves ttnn nothing it accepts
        raise UserError(
            f"override of conv {node.name!r}: real ttnn rejects it: {rejected}; change or remove the override"
        )
    if not found and least:  # no candidate will quote `miss`: say what came closest
        miss = f"the least it needs is {least[0]} B > budget {budget} B ({least[1]})"
    auto = bool(pin and pin.slice_type == "AUTO")
    return [dataclasses.replace(c, channel_slices=parts, auto_slicing=auto) for c in found], miss


def rank_configs(
    node: Node,
    configs: list[ConvConfig],
    source: TensorInfo,
    source_dtype: str,
    arrives: Placement | None,
    target: Target,
    output_memory: str | None = None,
) -> list[tuple[float, ConvConfig]]:
    """(modeled us, config), cheapest first; ties keep the given (candidate) order.

    `arrives` is where the conv's input is when the conv runs (None: where each config wants it);
    a config that wants it elsewhere pays the move. The output is costed where the config writes
    it: its L1 shards, or DRAM when sliced or when `output_memory` pins it there.
    """
    s = ConvShape.of(node, source.shape)
    scored = []
    for i, c in enumerate(configs):
        planned = dataclasses.replace(node, plan=dataclasses.replace(plan_of(node), conv=c))
        want = conv_input_placement(planned, s)
        out = conv_output_placement(planned, s) if output_memory != "DRAM" else DRAM
        have = arrives or want
        moves = ((node.inputs[0], want),) if want != have else ()
        plan = dataclasses.replace(plan_of(planned), output=out, reshard_inputs=moves)
        scored.append((op_cost(node, plan, target, [Operand(source.shape, source_dtype, have)]).total_us, i, c))
    scored.sort(key=lambda x: (x[0], x[1]))
    return [(cost, c) for cost, _, c in scored]


def choose_conv_config(
    node: Node,
    source: TensorInfo,
    source_dtype: str,
    arrives: Placement | None,
    target: Target,
    budget: int,
    pin: LayerOverride | None = None,
    reader_ops: tuple[str, ...] = (),
) -> ConvConfig:
    """The cheapest legal config (module docstring), with the reasons in its `why`."""
    s = ConvShape.of(node, source.shape)
    configs, miss = legal_configs(node, s, source_dtype, target, budget, pin, reader_ops)
    if not configs:
        where = f"conv {node.name!r} ({node.source}) cannot fit L1 on {target.name}"
        if pin:
            pins = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(pin).items() if v is not None)
            raise UserError(f"{where} with its override ({pins}): {miss}; relax or remove the override")
        raise UserError(
            f"{where} in any sharding or DRAM slicing: {miss}; use a smaller input size, a target "
            "with more L1 or fewer channels in the config"
        )
    ranked = rank_configs(node, configs, source, source_dtype, arrives, target, pin.memory if pin else None)
    (best_us, best), rest = ranked[0], ranked[1:]
    why = f"{_describe(best)}: {best_us:.1f} us, cheapest of {len(ranked)} that fit"
    if pin and (pin.sharding or pin.slice_type or pin.act_block_h is not None):
        why += " the override"
    if rest:
        why += f"; runner-up {_describe(rest[0][1])}: {rest[0][0]:.1f} us"
    if miss:
        why += f"; {miss}"
    if best.why:
        why += f"; {best.why}"
    return dataclasses.replace(best, why=why)


def _source_placement(n: Node, nodes: dict[str, Node], chosen: dict[str, Placement]) -> Placement | None:
    """Where the conv's input will most likely be when the conv runs: follow ops that keep their
    first input's placement back to a conv (its chosen output) or the model input (DRAM).
    None when a data-movement op (pool, upsample, concat) decides it: assume it lands as wanted."""
    x = nodes[n.inputs[0]]
    while op_kind(x).memory in ELTWISE:
        x = nodes[x.inputs[0]]
    if is_input(x):
        return DRAM
    return chosen.get(x.name)


def conv_sharding(
    graph: Graph, target: Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE, overrides: Overrides | None = None
) -> Graph:
    budget = target.l1_budget(l1_small_size)
    by_name = {n.name: n for n in graph.nodes}
    chosen: dict[str, Placement] = {}  # conv -> where it leaves its output
    users = graph.users()
    nodes = []
    for n in graph.nodes:
        if is_conv(n):
            if n.plan is None:
                raise ValueError(f"conv_sharding needs dtype_policy first ({n.name})")
            x = by_name[n.inputs[0]]
            pin = overrides.for_node(n) if overrides else None
            conv = choose_conv_config(
                n,
                x.out,
                stored_dtype(x.name, by_name),
                _source_placement(n, by_name, chosen),
                target,
                budget,
                pin,
                tuple(by_name[u].op for u in users[n.name]),
            )
            plan = dataclasses.replace(plan_of(n), conv=conv, notes=plan_of(n).notes + (f"conv: {conv.why}",))
            n = dataclasses.replace(n, plan=plan)
            pinned_dram = pin is not None and pin.memory == "DRAM"
            chosen[n.name] = DRAM if pinned_dram else conv_output_placement(n, ConvShape.of(n, x.out.shape))
        nodes.append(n)
    return graph.replace_nodes(nodes)
