"""ANALYSIS: per-core L1 bytes that ttnn 0.81.1 allocates for an op's circular buffers (and halo).

Pure functions of geometry and config, keyword-only, plain types (ints, tuples, the string names of
passes/plan.py), used by conv sharding, memory planning (through l1_sim) and the cost model; real
ttnn on a mock device checks them (tests/test_l1_model_*.py), not the emulator, which models no memory.

conv2d_l1 is calibrated against the real ttnn 0.81.1 on mock devices (tests/test_l1_model_conv.py):
exact for L1_FULL convs, conv and 1x1-matmul paths, every sharding, dtype, packer_l1_acc and output
layout the planner emits. DRAM-sliced convs are modelled slice by slice (`conv2d_slices`), every
program of every slice exact on the sampled and the committed programs' sliced convs (the
interleaved untilize of a WIDTH-sharded ROW_MAJOR slice and SliceWrite's CBs measured on
blackhole-20 only). Circular buffers that ttnn backs with a tensor's own buffer are not counted in
`cb`; every conv is assumed to have a bias. The other ops' functions are measured the same way
(tests/test_l1_model_ops.py).

Conv geometry conventions (as in plan.py): HEIGHT_SHARDED splits N*H*W over `num_cores`;
BLOCK_SHARDED (ROW_MAJOR orientation) splits N*H*W over grid y and channels over grid x;
WIDTH_SHARDED splits channels over `num_cores`. With DRAM slicing (`num_slices` > 1) ttnn runs the
conv slice by slice, each an L1 conv of its own input rectangle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hardware.targets import TILE

TILE_BYTES = {"bfloat16": 2048, "float32": 4096, "bfloat8_b": 1088}
DATUM_BYTES = {"bfloat16": 2, "float32": 4, "bfloat8_b": 1}
L1_SCRATCHPAD_BYTES = 64  # ttnn's l1_scratchpad_CB_size


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    return cdiv(a, b) * b


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def _pad4(padding: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a (h, w) or (top, bottom, left, right) padding."""
    p = _pair(padding) if isinstance(padding, int) or len(padding) == 2 else tuple(int(v) for v in padding)
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else p  # type: ignore[return-value]


def conv_output_hw(
    input_hw: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, ...],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """ttnn.get_conv_output_dim for both axes (padding (h, w) or (top, bottom, left, right))."""
    pt, pb, pl, pr = _pad4(padding)
    pads = (pt + pb, pl + pr)
    return tuple(  # type: ignore[return-value]
        (input_hw[i] + pads[i] - dilation[i] * (kernel_size[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def core_split(shard_layout: str, grid: tuple[int, int], num_cores: int) -> tuple[int, int]:
    """(cores along N*H*W, cores along channels) of a sharding."""
    if shard_layout == "HEIGHT_SHARDED":
        return num_cores, 1
    if shard_layout == "BLOCK_SHARDED":
        return grid[1], grid[0]
    if shard_layout == "WIDTH_SHARDED":
        return 1, num_cores
    raise ValueError(f"not a conv shard layout: {shard_layout!r}")


@dataclass(frozen=True)
class ConvBlocks:
    """The per-core matmul blocking ttnn derives for a sharded conv (all counts in tiles)."""

    out_h_ntiles: int  # per-core output rows (of the [N*H*W, C] matrix) / 32
    out_w_ntiles: int  # per-core output channels / 32
    act_block_h_ntiles: int
    act_block_w_ntiles: int
    weight_h_ntiles: int  # rows of the whole weight matrix (C_in*kh*kw) / 32
    in_channels_per_core: int  # padded
    cores_c_out: int  # cores across the output channels


def divisor_with_padding(num: int, start: int) -> int:
    """ttnn's find_closest_largest_divisor_with_num_padding: the largest d <= start that splits
    `num` with less than one share of padding."""
    d = start
    while d > 1 and round_up(num, d) - num >= round_up(num, d) // d:
        d -= 1
    return d


def output_cores_c(
    *,
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    out_channels: int,
    device_grid: tuple[int, int],
    matmul: bool,
) -> int:
    """Cores across the output channels: ttnn re-derives them from the device grid for block and
    width sharded convs (determine_output_parallel_config), not from the conv's core grid."""
    if matmul or shard_layout == "HEIGHT_SHARDED":
        return core_split(shard_layout, grid, num_cores)[1]
    if shard_layout == "BLOCK_SHARDED":
        return divisor_with_padding(cdiv(out_channels, TILE), device_grid[0])
    return divisor_with_padding(cdiv(out_channels, TILE), device_grid[0] * device_grid[1])


def conv_blocks(
    *,
    batch: int,
    input_hw: tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, ...],
    dilation: tuple[int, int],
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    act_block_h: int,
    act_block_w_div: int,
    num_slices: int,
    device_grid: tuple[int, int] | None = None,
    matmul: bool = False,
    channel_align: int = TILE,
) -> ConvBlocks:
    """`device_grid` (the target's compute grid, default `grid`) decides the output channel split;
    `channel_align`: the input channels per core are a multiple of it (a tile, or fewer when a
    DRAM slice arrives as a row-major shard)."""
    kh, kw = _pair(kernel_size)
    out_h, out_w = conv_output_hw(_pair(input_hw), (kh, kw), _pair(stride), padding, _pair(dilation))
    cores_nhw, cores_c = core_split(shard_layout, grid, num_cores)
    cores_c_out = output_cores_c(
        shard_layout=shard_layout,
        grid=grid,
        num_cores=num_cores,
        out_channels=out_channels,
        device_grid=device_grid or grid,
        matmul=matmul,
    )
    out_nhw = cdiv(batch * out_h * out_w, max(num_slices, 1))
    out_h_ntiles = cdiv(cdiv(out_nhw, TILE), cores_nhw)
    out_w_ntiles = cdiv(cdiv(out_channels, TILE), cores_c_out)
    padded_in = round_up(in_channels, channel_align * cores_c)
    in_per_core = padded_in // cores_c
    if shard_layout == "WIDTH_SHARDED":
        act_block_w = round_up(cdiv(in_per_core * kh * kw, max(act_block_w_div, 1)), TILE)
    elif matmul:  # a 1x1 conv as a matmul reads all of its (per-core) K at once
        act_block_w = round_up(in_per_core, TILE) if shard_layout == "BLOCK_SHARDED" else round_up(in_channels, TILE)
    else:  # height and block sharding read one kernel row (C * kw) per block
        act_block_w = round_up(in_per_core * kw, TILE)
    abh = out_h_ntiles
    if act_block_h > 0:
        want = max(act_block_h // TILE, 1)
        # ttnn falls back to the closest divisor of the per-core height that is <= the override
        abh = max(d for d in range(1, min(want, out_h_ntiles) + 1) if out_h_ntiles % d == 0)
    return ConvBlocks(
        out_h_ntiles=out_h_ntiles,
        out_w_ntiles=out_w_ntiles,
        act_block_h_ntiles=abh,
        act_block_w_ntiles=act_block_w // TILE,
        weight_h_ntiles=cdiv(padded_in * kh * kw, TILE),
        in_channels_per_core=in_per_core,
        cores_c_out=cores_c_out,
    )


@dataclass(frozen=True)
class ConvL1:
    """Per-core L1 bytes one ttnn.conv2d allocates besides its input tensor (largest DRAM slice)."""

    cb: int  # static circular buffers + dataflow buffers that no tensor backs
    halo: int  # the halo op's output shard (0 when ttnn needs no halo)
    output: int  # the conv's own L1-sharded output (the result, or a temporary when it goes to DRAM)


def conv_is_matmul(
    *,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, ...],
    dilation: tuple[int, int],
    shard_layout: str,
    groups: int,
) -> bool:
    """ttnn runs 1x1 stride-1 unpadded convs that are not width-sharded as a plain matmul."""
    return (
        _pair(kernel_size) == (1, 1)
        and _pair(stride) == (1, 1)
        and _pad4(padding) == (0, 0, 0, 0)
        and _pair(dilation) == (1, 1)
        and groups == 1
        and shard_layout != "WIDTH_SHARDED"
    )


def conv2d_l1(
    *,
    batch: int,
    input_hw: tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    act_block_h: int,
    act_block_w_div: int,
    input_dtype: str,
    weights_dtype: str,
    output_dtype: str,
    enable_act_double_buffer: bool,
    enable_weights_double_buffer: bool,
    fp32_dest_acc: bool,
    num_slices: int,
    device_grid: tuple[int, int],
    output_layout: str = "TILE",
    slice_type: str = "L1_FULL",
) -> ConvL1:
    """What one ttnn.conv2d (with a bias, packer_l1_acc = fp32_dest_acc) allocates per core in L1;
    for a DRAM-sliced conv the largest of its slices' (see `conv2d_slices`)."""
    args: dict[str, Any] = dict(
        batch=batch,
        input_hw=input_hw,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        shard_layout=shard_layout,
        grid=grid,
        num_cores=num_cores,
        act_block_h=act_block_h,
        act_block_w_div=act_block_w_div,
        input_dtype=input_dtype,
        weights_dtype=weights_dtype,
        output_dtype=output_dtype,
        enable_act_double_buffer=enable_act_double_buffer,
        enable_weights_double_buffer=enable_weights_double_buffer,
        fp32_dest_acc=fp32_dest_acc,
        device_grid=device_grid,
    )
    parts = conv2d_slices(**args, output_layout=output_layout, slice_type=slice_type, num_slices=num_slices)
    if parts:
        return ConvL1(cb=max(p.cb for p in parts), halo=max(p.halo for p in parts), output=max(p.output for p in parts))
    return _conv_l1(**args, output_layout=output_layout)


def _conv_l1(
    *,
    batch: int,
    input_hw: tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, ...],
    dilation: tuple[int, int],
    groups: int,
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    act_block_h: int,
    act_block_w_div: int,
    input_dtype: str,
    weights_dtype: str,
    output_dtype: str,
    enable_act_double_buffer: bool,
    enable_weights_double_buffer: bool,
    fp32_dest_acc: bool,
    device_grid: tuple[int, int],
    output_layout: str,
    channel_align: int = TILE,
) -> ConvL1:
    """One conv on L1-resident data (the whole conv, or one DRAM slice of it)."""
    kh, kw = _pair(kernel_size)
    matmul = conv_is_matmul(
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        shard_layout=shard_layout,
        groups=groups,
    )
    b = conv_blocks(
        batch=batch,
        input_hw=input_hw,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        shard_layout=shard_layout,
        grid=grid,
        num_cores=num_cores,
        act_block_h=act_block_h,
        act_block_w_div=act_block_w_div,
        num_slices=0,
        device_grid=device_grid,
        matmul=matmul,
        channel_align=channel_align,
    )
    out_tiles = b.out_h_ntiles * b.out_w_ntiles
    w_tile, out_tile = TILE_BYTES[weights_dtype], TILE_BYTES[output_dtype]
    # a row-major output shard has the tiled one's size (bf16); the matmul path writes tiles anyway
    output = out_tiles * out_tile
    if matmul:  # the matmul's own CBs (conv2d.cpp builds a 1D/2D mcast matmul program config)
        k_tiles, in_tile = b.weight_h_ntiles, TILE_BYTES[input_dtype]
        partials = b.out_h_ntiles * b.out_w_ntiles * TILE_BYTES["float32"] if fp32_dest_acc else 0
        weights = b.act_block_w_ntiles * b.out_w_ntiles * w_tile
        if shard_layout == "HEIGHT_SHARDED":  # in0 is the input shard; all of K per block
            return ConvL1(cb=weights + partials + b.out_w_ntiles * w_tile, halo=0, output=output)
        # block sharded: in0 is multicast along rows, K split over the channel cores, double
        # buffered when there is more than one K block
        k_blocks = k_tiles // b.act_block_w_ntiles
        buffers = 2 if k_blocks > 1 else 1
        act = b.out_h_ntiles * b.act_block_w_ntiles * in_tile
        return ConvL1(cb=buffers * (act + weights) + partials + b.out_w_ntiles * w_tile, halo=0, output=output)
    # the halo output (the conv's activation source) is row-major bf16 unless the input is fp32
    conv_in_dtype = "float32" if input_dtype == "float32" else "bfloat16"
    in_tile = TILE_BYTES[conv_in_dtype]

    weight_tiles = b.out_w_ntiles * b.act_block_w_ntiles
    num_blocks_act_h = b.out_h_ntiles // b.act_block_h_ntiles
    if shard_layout == "HEIGHT_SHARDED" and num_blocks_act_h > 1:
        weight_tiles *= kh  # ttnn keeps all kernel rows of the weight block resident
    elif enable_weights_double_buffer:
        weight_tiles *= 2

    # packer L1 accumulation (on with fp32_dest_acc in our configs) needs more than one inner block
    # with a bias; the partials then live in their own CB instead of aliasing the output
    in0_blocks_w = b.weight_h_ntiles // b.act_block_w_ntiles
    if shard_layout == "BLOCK_SHARDED":
        in0_blocks_w *= b.cores_c_out
    packer_l1_acc = fp32_dest_acc and in0_blocks_w > 1
    partial_dtype = ("float32" if fp32_dest_acc else "bfloat16") if packer_l1_acc else output_dtype
    partials = 0
    if output_layout == "ROW_MAJOR" or partial_dtype != output_dtype:
        partials = b.act_block_h_ntiles * b.out_w_ntiles * TILE_BYTES[partial_dtype]  # one act block

    act_tiles = b.act_block_h_ntiles * b.act_block_w_ntiles
    act_cb_tiles = act_tiles * (2 if enable_act_double_buffer else 1)
    act_cb_tile = in_tile if shard_layout == "HEIGHT_SHARDED" else out_tile

    row_major_tiles = 0
    if shard_layout == "WIDTH_SHARDED":
        row_major_tiles = 2 * b.act_block_w_ntiles
    elif shard_layout == "BLOCK_SHARDED" and conv_in_dtype != output_dtype:
        row_major_tiles = act_cb_tiles  # otherwise it overlaps the ACT CB

    cb = (
        weight_tiles * w_tile
        + partials
        + act_cb_tiles * act_cb_tile
        + act_tiles * out_tile  # tilized activation block
        + b.out_w_ntiles * w_tile  # bias
        + row_major_tiles * in_tile
        + L1_SCRATCHPAD_BYTES
    )
    halo = _conv_halo(
        batch,
        _pair(input_hw),
        (kh, kw),
        _pair(stride),
        _pad4(padding),
        _pair(dilation),
        core_split(shard_layout, grid, num_cores)[0],
        b.out_h_ntiles * TILE,
        b.in_channels_per_core * DATUM_BYTES[conv_in_dtype],
    )
    return ConvL1(cb=cb, halo=halo, output=output)


@dataclass(frozen=True)
class ConvSlice:
    """Per-core L1 bytes of one DRAM slice of a conv, in the order ttnn runs its programs
    (op_slicing.cpp run_sliced_op): PaddedSlice copies the slice's input into an L1 shard (`input`,
    with CBs `slice_cb`); when that sharding is not the conv's, a reshard into `reshard` (the input
    is then freed and the copy moved); the halo (`halo`, CBs `halo_cb`) frees its input and is
    moved; the conv writes `output` with CBs `cb` and the halo is freed; a ROW_MAJOR conv writes
    tiles that an untilize copies into `untilize` (the tiles then freed). A WIDTH-sharded ROW_MAJOR
    result is first copied to an L1-interleaved tensor (`interleaved`, the tiles then freed) that an
    interleaved untilize (CBs `untilize_cb`) copies into `untilize`, which SliceWrite reads through
    CBs `write_cb`. SliceWrite copies the result to DRAM."""

    input: int
    slice_cb: int
    reshard: int
    halo: int
    halo_cb: int
    output: int
    cb: int
    untilize: int
    interleaved: int = 0
    untilize_cb: int = 0
    write_cb: int = 0


def _slice_ranges(extent: int, num_slices: int, rounding: int) -> list[tuple[int, int]]:
    """op_slicing.cpp: output slices of whole `rounding` units, the first ones one unit larger."""
    units = cdiv(extent, rounding)
    out, start = [], 0
    for i in range(num_slices):
        size = rounding * (units // num_slices + (1 if i < units % num_slices else 0))
        end = min(extent, start + size)
        if end > start:
            out.append((start, end))
        start += size
    return out


def _input_range(
    o0: int, o1: int, out: int, inp: int, k: int, s: int, d: int, p0: int, p1: int
) -> tuple[int, int, int, int]:
    """Conv2dSliceAttr::run_L1_op along one axis: (input start, end, pad before, pad after) that an
    output range [o0, o1) reads; the image's own padding only at its edges."""
    start, end = o0 * s - p0, (o1 - 1) * s - p0 + d * (k - 1) + 1
    pad0, pad1 = max(0, -start), max(0, end - inp)
    start, end = max(0, start), min(inp, end)
    if o0 == 0:
        start, pad0 = 0, p0
    if o1 == out:
        end, pad1 = inp, p1
    return start, end, pad0, pad1


def _divisor_with_padding_and_mult(num: int, start: int, mult: int) -> int:
    """ttnn's find_closest_largest_divisor_with_num_padding_and_mult."""
    d = start
    while d > 1 and round_up(num, d * mult) - num >= round_up(num, d * mult) // d:
        d -= 1
    return d


def _slice_cores(
    shard_layout: str, device_grid: tuple[int, int], out_nhw: int, in_channels: int, channel_align: int
) -> tuple[int, int, tuple[int, int]]:
    """(cores along N*H*W, along channels, core box) of the L1 shard a DRAM slice is copied into:
    determine_parallel_config over the whole device grid for the slice's output (channels padded)."""
    ntiles = cdiv(out_nhw, TILE)
    if shard_layout == "HEIGHT_SHARDED":
        n = _divisor_with_padding_and_mult(ntiles, device_grid[0] * device_grid[1], 1)
        rows, rest = divmod(n, device_grid[0])
        return n, 1, (device_grid[0] if rows else rest, rows + (1 if rest else 0))
    if shard_layout == "BLOCK_SHARDED":
        n = _divisor_with_padding_and_mult(ntiles, device_grid[1], 1)
        c = divisor_with_padding(cdiv(in_channels, channel_align), device_grid[0])
        return n, c, (c, n)
    c = divisor_with_padding(cdiv(in_channels, TILE), device_grid[0] * device_grid[1])
    rows, rest = divmod(c, device_grid[0])
    return 1, c, (device_grid[0] if rows else rest, rows + (1 if rest else 0))


SLICE_CHANNEL_ALIGN = 8  # a DRAM slice's row-major shard pads channels to 16 bytes of bfloat16


def _row_major_shard(
    rows: int, channels: int, cores_nhw: int, cores_c: int, row_align: int, channel_align: int
) -> tuple[int, int, int]:
    """(rows, channels, bytes) per core of a row-major bfloat16 shard (determine_input_memory_config)."""
    shard_rows = round_up(rows, cores_nhw * row_align) // cores_nhw
    shard_c = round_up(channels, cores_c * channel_align) // cores_c
    return shard_rows, shard_c, shard_rows * round_up(shard_c * DATUM_BYTES["bfloat16"], 16)


def conv2d_slices(
    *,
    batch: int,
    input_hw: tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    act_block_h: int,
    act_block_w_div: int,
    input_dtype: str,
    weights_dtype: str,
    output_dtype: str,
    enable_act_double_buffer: bool,
    enable_weights_double_buffer: bool,
    fp32_dest_acc: bool,
    num_slices: int,
    device_grid: tuple[int, int],
    output_layout: str,
    slice_type: str,
) -> list[ConvSlice]:
    """Every slice of a DRAM-sliced ttnn.conv2d (num_slices > 1), in order. Each slice is an L1 conv
    of its own input rectangle, with the image's padding only at the image's edges and, for a TILE
    output, its output width padded to whole tiles by padding on the right.
    Empty when ttnn does not slice: L1_FULL, one slice, or a 1x1 matmul conv (measured: ttnn runs
    it whole, from its DRAM input)."""
    if (
        slice_type == "L1_FULL"
        or num_slices <= 1
        or conv_is_matmul(
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            shard_layout=shard_layout,
            groups=groups,
        )
    ):
        return []
    (ih, iw), (kh, kw), (sh, sw), (dh, dw) = _pair(input_hw), _pair(kernel_size), _pair(stride), _pair(dilation)
    pt, pb, pl, pr = _pad4(padding)
    out_h, out_w = conv_output_hw((ih, iw), (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw))
    tile_out = output_layout == "TILE"
    by_width = slice_type == "DRAM_SLICE_WIDTH"
    ranges = _slice_ranges(out_w if by_width else out_h, num_slices, TILE if tile_out and by_width else 1)
    parts = []
    for o0, o1 in ranges:
        oh = (o0, o1) if not by_width else (0, out_h)
        ow = (o0, o1) if by_width else (0, out_w)
        h0, h1, ptop, pbot = _input_range(*oh, out_h, ih, kh, sh, dh, pt, pb)
        w0, w1, plft, prgt = _input_range(*ow, out_w, iw, kw, sw, dw, pl, pr)
        slice_w = ow[1] - ow[0]
        # measured: a slice that reads the whole input is run as an unsliced conv of it would be:
        # no padding to whole tiles of output width, channels in whole tiles per core
        whole = (h0, h1, w0, w1) == (0, ih, 0, iw)
        if tile_out and slice_w % TILE and not whole:  # the conv computes whole tiles of output width
            prgt += (TILE - slice_w % TILE) * sw
            slice_w = round_up(slice_w, TILE)
        in_rows = batch * (h1 - h0) * (w1 - w0)
        width = shard_layout == "WIDTH_SHARDED"
        align = TILE if width or whole else SLICE_CHANNEL_ALIGN
        nhw, c, box = _slice_cores(shard_layout, device_grid, batch * (oh[1] - oh[0]) * slice_w, in_channels, align)
        _, slice_c, input_bytes = _row_major_shard(in_rows, in_channels, nhw, c, TILE, align)
        conv_nhw, conv_c = core_split(shard_layout, grid, num_cores)
        conv_box = grid if shard_layout == "BLOCK_SHARDED" else None
        same = (nhw, c) == (conv_nhw, conv_c) and (conv_box is None or conv_box == box)
        conv_c_width, reshard = slice_c, 0
        if not same:
            _, conv_c_width, reshard = _row_major_shard(
                in_rows, in_channels, conv_nhw, conv_c, TILE, TILE if width else SLICE_CHANNEL_ALIGN
            )
        conv = _conv_l1(
            batch=batch,
            input_hw=(h1 - h0, w1 - w0),
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=(kh, kw),
            stride=(sh, sw),
            padding=(ptop, pbot, plft, prgt),
            dilation=(dh, dw),
            groups=groups,
            shard_layout=shard_layout,
            grid=grid,
            num_cores=num_cores,
            act_block_h=act_block_h,
            act_block_w_div=act_block_w_div,
            input_dtype=input_dtype,
            weights_dtype=weights_dtype,
            output_dtype=output_dtype,
            enable_act_double_buffer=enable_act_double_buffer,
            enable_weights_double_buffer=enable_weights_double_buffer,
            fp32_dest_acc=fp32_dest_acc,
            device_grid=device_grid,
            output_layout="TILE",
            channel_align=math.gcd(conv_c_width, TILE),
        )
        in_tiles = max(cdiv((k + 1) * slice_c, TILE) - (k * slice_c) // TILE for k in range(c))
        slice_cb = 4 * in_tiles * (TILE_BYTES[input_dtype] + TILE_BYTES["bfloat16"]) + slice_c * DATUM_BYTES["bfloat16"]
        # conv2d's bypass_halo: a width-sharded row-major slice without padding is read as it is
        halo = 0 if width and (ptop, pbot, plft, prgt) == (0, 0, 0, 0) else conv.halo
        rm = dict(untilize=0 if tile_out else conv.output)
        if width and not tile_out:
            rm = _interleaved_untilize(
                batch * (oh[1] - oh[0]) * (ow[1] - ow[0]), out_channels, output_dtype, device_grid[0] * device_grid[1]
            )
        parts.append(
            ConvSlice(
                input=input_bytes,
                slice_cb=slice_cb,
                reshard=reshard,
                halo=halo,
                halo_cb=halo_cb_bytes(channels_per_core=conv_c_width, tiled_input=False) if halo else 0,
                output=conv.output,
                cb=conv.cb,
                **rm,
            )
        )
    return parts


def _interleaved_untilize(rows: int, channels: int, dtype: str, banks: int) -> dict[str, int]:
    """A WIDTH-sharded ROW_MAJOR slice result (op_slicing.cpp: slice_write reads row-major results
    only height or block sharded): sharded_to_interleaved into L1 tiles, an interleaved untilize
    (input and output CBs of one tile row, double-buffered when the rows are not whole tiles or
    there are more tile rows than half the banks: measured on blackhole-20), then slice_write with
    8 KiB of CBs (measured for 64 to 512 channels)."""
    tile_rows, tiles = cdiv(rows, TILE), channel_tiles(channels)
    depth = 1 if rows % TILE == 0 and 2 * tile_rows <= banks else 2
    stick = round_up(channels * DATUM_BYTES["bfloat16"], 16)
    return dict(
        interleaved=cdiv(tile_rows * tiles, banks) * TILE_BYTES[dtype],
        untilize=cdiv(rows, banks) * stick,
        untilize_cb=depth * tiles * (TILE_BYTES[dtype] + BF16_TILE),
        write_cb=4 * BF16_TILE,
    )


def _conv_halo(
    batch: int,
    input_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    cores_nhw: int,
    rows_per_core: int,
    stick_bytes: int,
) -> int:
    """Halo output per core: each core holds the padded-input sticks from its first output pixel's
    window to its last one's (ttnn's sliding-window shard boundaries), the largest core counts."""
    (ih, iw), (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw) = input_hw, kernel, stride, padding, dilation
    out_h, out_w = conv_output_hw(input_hw, kernel, stride, padding, dilation)
    hp, wp = ih + pt + pb, iw + pl + pr
    total = batch * out_h * out_w

    def stick(o: int) -> int:  # padded-input index of output pixel o's window origin
        n, r = divmod(o, out_h * out_w)
        y, x = divmod(r, out_w)
        return n * hp * wp + y * sh * wp + x * sw

    reach = dh * (kh - 1) * wp + dw * (kw - 1)
    most = 0
    for core in range(cores_nhw):
        first = core * rows_per_core
        if first >= total:
            break
        last = min(first + rows_per_core, total) - 1
        most = max(most, stick(last) + reach - stick(first) + 1)
    return most * round_up(stick_bytes, 16)


def halo_bytes(
    *,
    batch: int,
    input_hw: tuple[int, int],
    channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    dtype: str,
    num_slices: int,
) -> int:
    """Per-core L1 of the halo op's output (the padded input windows a sliding-window op reads).

    ttnn inserts a halo before convs and pools that are not plain matmuls (kernel > 1, stride > 1 or
    padding). Conservative: each core holds the padded input rows covering its output rows plus the
    kernel's reach, rounded up to whole padded image rows. DRAM slicing divides the width (the
    slice type ttnn recommends) and adds one kernel reach per slice.
    """
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    ih, iw = _pair(input_hw)
    if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
        return 0
    out_h, out_w = conv_output_hw((ih, iw), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    slices = max(num_slices, 1)
    out_w_slice = cdiv(out_w, slices)
    padded_w = min(out_w_slice * sw + dw * (kw - 1), iw + 2 * pw)
    cores_nhw, cores_c = core_split(shard_layout, grid, num_cores)
    out_rows_per_core = cdiv(cdiv(batch * out_h * out_w_slice, cores_nhw), out_w_slice)
    in_rows = min((out_rows_per_core + 1) * sh + dh * (kh - 1), batch * (ih + 2 * ph))
    c_per_core = round_up(channels, TILE * cores_c) // cores_c
    datum = 4 if dtype == "float32" else 2  # halo output is row-major, bf8 is unpacked to bf16
    return in_rows * padded_w * c_per_core * datum


# ------------------------------------------------------------------ non-conv ops
# Measured against real ttnn 0.81.1 on mock devices (runtime/ttnn_op_probe.py, tests/test_l1_model_ops.py):
# each function gives one device program's static circular buffers that are not tensor-backed, per core.
BF16_TILE = TILE_BYTES["bfloat16"]
POOL_CHANNELS_PER_REDUCTION = 8 * TILE  # ttnn's pool reduces at most 8 channel tiles at a time


def channel_tiles(channels: int) -> int:
    return cdiv(channels, TILE)


def pool_halo_bytes(
    *,
    batch: int,
    input_hw: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, ...],
    dilation: tuple[int, int],
    rows_per_core: int,
    channels_per_core: int,
) -> int:
    """Per-core L1 of the halo output feeding a pool or a bilinear upsample (exact, measured).

    Core i computes output pixels [i * rows_per_core, (i + 1) * rows_per_core) of the flat N*OH*OW
    output; its halo shard holds every padded input stick from its first window's first to its last
    window's last, as row-major bfloat16. The per-core size is the largest such span.
    (A conv's halo is modelled by `halo_bytes`, owned by the conv model.)
    """
    (ih, iw), (kh, kw), (sh, sw), (dh, dw) = input_hw, kernel_size, stride, dilation
    pt, pb, pl, pr = _pad4(padding)
    oh, ow = conv_output_hw((ih, iw), (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw))
    hp, wp = ih + pt + pb, iw + pl + pr
    n = batch * oh * ow

    def first_stick(i: int) -> int:
        b, r = divmod(i, oh * ow)
        y, x = divmod(r, ow)
        return b * hp * wp + y * sh * wp + x * sw

    reach = dh * (kh - 1) * wp + dw * (kw - 1)
    span = max(
        first_stick(min(n, start + rows_per_core) - 1) + reach - first_stick(start) + 1
        for start in range(0, n, rows_per_core)
    )
    return span * channels_per_core * DATUM_BYTES["bfloat16"]


def bilinear_halo_bytes(
    *, batch: int, input_hw: tuple[int, int], scale: tuple[int, int], num_cores: int, channels_per_core: int
) -> int:
    """Per-core L1 of the halo output feeding a bilinear upsample (measured exact, whole or partial
    image rows per shard): the output sticks are split evenly over the input's cores, and each core
    holds the padded (by 1) input sticks from the top-left neighbour of its first output pixel's
    source to the bottom-right neighbour of its last one's, as row-major bfloat16."""
    (h, w), (sh, sw) = input_hw, scale
    oh, ow = h * sh, w * sw
    total = batch * oh * ow
    per = cdiv(total, num_cores)
    wp = w + 2

    def top_left(o: int) -> int:  # padded index of the top-left source of output pixel o
        n, r = divmod(o, oh * ow)
        oy, ox = divmod(r, ow)
        return n * (h + 2) * wp + ((2 * oy + 1 - sh) // (2 * sh) + 1) * wp + (2 * ox + 1 - sw) // (2 * sw) + 1

    most = 0
    for start in range(0, total, per):
        last = min(total, start + per) - 1
        # the extremes sit at the range's ends or where an output row starts (sources move back left)
        first_row_end = (start // ow + 1) * ow
        lo = min(top_left(start), top_left(first_row_end) if first_row_end <= last else top_left(start))
        last_row_start = last // ow * ow
        hi = max(top_left(last), top_left(last_row_start - 1) if last_row_start - 1 >= start else top_left(last))
        most = max(most, hi + wp + 1 - lo + 1)
    return most * channels_per_core * DATUM_BYTES["bfloat16"]


def halo_cb_bytes(*, channels_per_core: int, tiled_input: bool) -> int:
    """The halo program: two row-major staging sticks, plus a double-buffered row of bfloat16 tiles
    when it untilizes a TILE input."""
    sticks = 2 * channels_per_core * DATUM_BYTES["bfloat16"]
    return sticks + (4 * channel_tiles(channels_per_core) * BF16_TILE if tiled_input else 0)


def pool2d_cb_bytes(*, channels_per_core: int, kernel_size: tuple[int, int], output_dtype: str) -> int:
    """The Pool2D program (max and avg alike): two readers' double-buffered pages of kernel windows
    (at most 8 channel tiles; windows of more than 16 sticks are read 32 sticks at a time), a
    bfloat16 tile row of output (also for a bfloat8_b output) and 6 KiB of scalar/index CBs."""
    kh, kw = _pair(kernel_size)
    rows = kh * kw if kh * kw <= 16 else 32
    channels = min(channel_tiles(channels_per_core) * TILE, POOL_CHANNELS_PER_REDUCTION)
    page = round_up(channels * rows, TILE * TILE) * DATUM_BYTES["bfloat16"]
    del output_dtype  # measured: the same for bfloat16 and bfloat8_b outputs
    return 4 * page + channel_tiles(channels_per_core) * BF16_TILE + 2 * BF16_TILE + BF16_TILE


@dataclass(frozen=True)
class PoolSlice:
    """Per-core L1 bytes of one DRAM slice of a pool, in the order ttnn runs its programs: PaddedSlice
    copies the slice's input into row-major height shards (`input`, CBs `slice_cb`), the halo
    (`halo`, CBs `halo_cb`) frees it, Pool2D writes `output` (CBs `cb`) and frees the halo, then
    SliceWrite copies the output to DRAM."""

    input: int
    slice_cb: int
    halo: int
    halo_cb: int
    output: int
    cb: int


def pool_slices(
    *,
    batch: int,
    input_hw: tuple[int, int],
    channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    slice_type: str,
    num_slices: int,
    num_cores: int,
    input_dtype: str,
    output_dtype: str,
) -> list[PoolSlice]:
    """Every slice of a DRAM-sliced max/avg pool with a TILE output (op_slicing.cpp, as for convs:
    each slice an L1 pool of its input rectangle, the image's padding at its edges only), each slice
    height sharded on as many of the `num_cores` cores as its output's tiles split onto evenly
    (measured exact for width slices; ttnn may block-shard height slices of many channels, which
    then need less: a bound)."""
    (ih, iw), (kh, kw), (sh, sw), (dh, dw) = _pair(input_hw), _pair(kernel_size), _pair(stride), _pair(dilation)
    pt, pb, pl, pr = _pad4(padding)
    out_h, out_w = conv_output_hw((ih, iw), (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw))
    by_width = slice_type == "DRAM_SLICE_WIDTH"
    parts = []
    for o0, o1 in _slice_ranges(out_w if by_width else out_h, num_slices, TILE if by_width else 1):
        oh, ow = ((0, out_h), (o0, o1)) if by_width else ((o0, o1), (0, out_w))
        h0, h1, ptop, pbot = _input_range(*oh, out_h, ih, kh, sh, dh, pt, pb)
        w0, w1, plft, prgt = _input_range(*ow, out_w, iw, kw, sw, dw, pl, pr)
        out_px = batch * (oh[1] - oh[0]) * (ow[1] - ow[0])
        cores = _divisor_with_padding_and_mult(cdiv(out_px, TILE), num_cores, 1)  # determine_parallel_config
        _, _, input_bytes = _row_major_shard(
            batch * (h1 - h0) * (w1 - w0), channels, cores, 1, TILE, SLICE_CHANNEL_ALIGN
        )
        rows_out = round_up(out_px, cores * TILE) // cores
        halo = pool_halo_bytes(
            batch=batch,
            input_hw=(h1 - h0, w1 - w0),
            kernel_size=(kh, kw),
            stride=(sh, sw),
            padding=(ptop, pbot, plft, prgt),
            dilation=(dh, dw),
            rows_per_core=rows_out,
            channels_per_core=channels,
        )
        tiles = channel_tiles(channels)
        parts.append(
            PoolSlice(
                input=input_bytes,
                slice_cb=4 * tiles * (TILE_BYTES[input_dtype] + BF16_TILE) + channels * DATUM_BYTES["bfloat16"],
                halo=round_up(halo, 16),
                halo_cb=halo_cb_bytes(channels_per_core=channels, tiled_input=False),
                output=rows_out // TILE * tiles * TILE_BYTES[output_dtype],
                cb=pool2d_cb_bytes(channels_per_core=channels, kernel_size=(kh, kw), output_dtype=output_dtype),
            )
        )
    return parts


def upsample_cb_bytes(
    *, channels_per_core: int, mode: str, layout: str, sharded: bool, rows: int, num_cores: int
) -> int:
    """The upsample program (a bilinear one runs after its halo, see `halo_cb_bytes`).

    Bilinear: input and output staging of 16 bytes per channel (input at most 256 channels at a
    time) and two double-buffered bfloat16 scalar tiles. Nearest: sharded copies through
    tensor-backed CBs; interleaved (`rows` input rows over `num_cores` cores) stages input and output
    sticks (ROW_MAJOR: one CB) or tile rows (TILE: two CBs), double-buffered when a core gets more
    than one."""
    if mode == "bilinear":
        return 16 * min(channels_per_core, POOL_CHANNELS_PER_REDUCTION) + 16 * channels_per_core + 4 * BF16_TILE
    if sharded:
        return 0
    if layout == "ROW_MAJOR":
        return min(2, cdiv(rows, num_cores)) * channels_per_core * DATUM_BYTES["bfloat16"]
    return 2 * min(2, cdiv(cdiv(rows, TILE), num_cores)) * channel_tiles(channels_per_core) * BF16_TILE


def concat_cb_bytes(*, input_channels: list[int], layout: str, sharded: bool, dtype: str) -> int:
    """ttnn.concat along channels. Two sharded TILE inputs are untilized into tile-row CBs
    (bfloat16), concatenated and tilized back (one bfloat16 and one output-dtype tile row); other
    sharded concats write through tensor-backed CBs. Interleaved: two pages of the output."""
    out_tiles = channel_tiles(sum(input_channels))
    if sharded:
        if layout != "TILE" or len(input_channels) != 2:
            return 0
        return sum(channel_tiles(c) for c in input_channels) * BF16_TILE + out_tiles * (BF16_TILE + TILE_BYTES[dtype])
    if layout == "TILE":
        return 2 * TILE_BYTES[dtype]
    return 2 * sum(input_channels) * DATUM_BYTES["bfloat16"]


def eltwise_cb_bytes(*, dtypes: tuple[str, ...], sharded_alike: bool, broadcast: bool = False) -> int:
    """ttnn's binary_ng (add, multiply) over (input a, input b, output) dtypes: when both inputs are
    sharded alike and the output is sharded on as many cores (any shard layout, measured) every CB
    is tensor-backed; otherwise each operand streams through a two-tile CB,
    plus two tiles of b when b is broadcast (one row against many)."""
    if sharded_alike:
        return 0
    return 2 * sum(TILE_BYTES[d] for d in dtypes) + (2 * TILE_BYTES[dtypes[1]] if broadcast else 0)


def layout_cb_bytes(*, channels: int, to: str, sharded: bool, in_dtype: str, out_dtype: str) -> int:
    """ttnn.to_layout: sharded tilize/untilize use tensor-backed CBs; interleaved untilize streams a
    double-buffered tile row in and out, interleaved tilize one tile row in (bfloat16) and out."""
    if sharded:
        return 0
    tiles = channel_tiles(channels)
    if to == "ROW_MAJOR":
        return 2 * tiles * (TILE_BYTES[in_dtype] + BF16_TILE)
    return tiles * (BF16_TILE + TILE_BYTES[out_dtype])


def reduce_cb_bytes(*, in_dtype: str, out_dtype: str) -> int:
    """global_avg_pool2d's reduction over H*W of a [1, 1, H*W, C] tensor in one program: two input
    tiles, a bfloat16 scaler tile, two output tiles."""
    return 2 * TILE_BYTES[in_dtype] + BF16_TILE + 2 * TILE_BYTES[out_dtype]


def reduce_programs(
    *, rows: int, channels: int, num_cores: int, in_dtype: str, out_dtype: str
) -> list[tuple[int, int]]:
    """global_avg_pool2d's reduction programs as (intermediate L1 bytes per bank it leaves for the
    next program, CB bytes). Few channel tiles (at most half the cores) over at least 32 row tiles
    reduce in two programs: partial sums into an intermediate of 128 B per channel tile, then the
    final reduction (measured bfloat16 constants, blackhole-20: 1 to 8 channel tiles, 64 to 256 row
    tiles)."""
    if 2 * channel_tiles(channels) <= num_cores and cdiv(rows, TILE) >= TILE:
        return [(128 * channel_tiles(channels), 13 * BF16_TILE), (0, 15 * BF16_TILE)]
    return [(0, reduce_cb_bytes(in_dtype=in_dtype, out_dtype=out_dtype))]


def conv2d_illegal(
    *,
    batch: int,
    input_hw: tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    shard_layout: str,
    grid: tuple[int, int],
    num_cores: int,
    act_block_h: int,
    act_block_w_div: int,
    output_dtype: str,
    num_slices: int,
    output_layout: str = "TILE",
    slice_type: str = "L1_FULL",
    **_: object,
) -> str | None:
    """Why ttnn 0.81.1 rejects (or crashes on) this conv config, or None. Rules seen while sampling
    real ttnn (tests/test_l1_model_conv.py checks each rule only fires where real ttnn rejects)."""
    if output_layout == "ROW_MAJOR" and output_dtype == "bfloat8_b":
        return "a row-major output cannot be bfloat8_b (TILE only for BFLOAT8_B)"
    if act_block_w_div > 1:
        return "act_block_w_div > 1: ttnn 0.81.1 crashes (SIGFPE in to_weight_tile_layout) or rejects it"
    matmul = conv_is_matmul(
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        shard_layout=shard_layout,
        groups=groups,
    )
    k_tiles = cdiv(in_channels, TILE)
    if matmul and shard_layout == "BLOCK_SHARDED" and k_tiles % grid[0]:
        return f"block-sharded 1x1 matmul: K {k_tiles} tiles over {grid[0]} cores does not match the weights' K"
    if num_slices > 1:  # op_slicing.cpp: slices align to tiles (TILE, width) or need a few columns each
        out_h, out_w = conv_output_hw(
            _pair(input_hw), _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation)
        )
        if slice_type == "DRAM_SLICE_WIDTH":
            most = cdiv(out_w, TILE) if output_layout == "TILE" else out_w // 4
        else:
            most = out_h
        if num_slices > most:
            return (
                f"{num_slices} slices exceed the {most} ttnn allows for this output {out_h}x{out_w} ({output_layout})"
            )
    if shard_layout == "WIDTH_SHARDED" and act_block_h > 0:
        b = conv_blocks(
            batch=batch,
            input_hw=input_hw,
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            shard_layout=shard_layout,
            grid=grid,
            num_cores=num_cores,
            act_block_h=0,
            act_block_w_div=act_block_w_div,
            num_slices=num_slices,
        )
        if b.out_h_ntiles % (act_block_h // TILE):
            return f"width sharding: act_block_h {act_block_h} must divide the output height ({b.out_h_ntiles} tiles)"
    return None


# ------------------------------------------------------------------ resample (two interpolation matmuls)

# ttnn.permute of an interleaved ROW_MAJOR tensor: three 4 KiB CBs whatever the shape (measured,
# bfloat16, tests/test_l1_model_resample.py)
PERMUTE_RM_CB_BYTES = 3 * 4096


def resample_matmul_cb_bytes(*, k: int, n: int, in0_dtype: str, in1_dtype: str, out_dtype: str) -> int:
    """ttnn.matmul with MatmulMultiCoreReuseProgramConfig(in0_block_w=1, out_subblock 1x1, per_core_M=1,
    per_core_N = the output's width in tiles), operands and output interleaved: in0 two tiles, in1 two
    tile columns of N tiles, the output N tiles, and a bfloat16 partials CB of N tiles when K spans
    more than one tile and the output is not bfloat16 (else the output CB holds the partials)."""
    nt, kt = cdiv(n, TILE), cdiv(k, TILE)
    interm = nt * BF16_TILE if kt > 1 and out_dtype != "bfloat16" else 0
    return 2 * TILE_BYTES[in0_dtype] + 2 * nt * TILE_BYTES[in1_dtype] + nt * TILE_BYTES[out_dtype] + interm


def resample_untilize_cb_bytes(*, width: int, dtype: str) -> int:
    """Interleaved untilize of the resample's [N, C, H', W'] result: as `layout_cb_bytes` when W' fills
    whole tiles, single-buffered when the last tile is cut (measured)."""
    double = layout_cb_bytes(channels=width, to="ROW_MAJOR", sharded=False, in_dtype=dtype, out_dtype=dtype)
    return double if width % TILE == 0 else double // 2
