"""ANALYSIS: the program's L1 at address level, op by op, in the order the generated code allocates.

Memory planning asks "does this op fit?" here instead of summing bytes: L1 is tt-metal's lock-step,
top-down, first-fit bank allocator (passes/l1_allocator.FreeList),
so a buffer fits only in a free *block* big enough, and an op's circular buffers (growing from the
bottom of L1) must end below the lowest live L1 buffer. `L1Sim` holds the free lists of L1 and
L1_SMALL with the address of every live tensor; `op_steps` spells out what one op allocates, in the
order real ttnn 0.81.1 runs its programs (read from its graph traces on a mock device): e.g. a conv
reshards its input into a temporary when it is not sharded as the conv runs, runs the halo, moves the
halo output, allocates its output and checks its CBs; a DRAM-sliced conv runs slice by slice.

Every size is the bytes ttnn's allocator asks one bank for (`buffer_bytes`). A failed allocation or
CB clash raises `DoesNotFit` with the message the device would give.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from converter.ops import Layout, Memory, is_input, is_output, op_kind
from hardware.targets import TILE, Target
from passes import cb_model, legality
from passes.cb_model import cdiv, round_up
from passes.l1_allocator import FreeList
from passes.plan import Buffer, MemoryLayout, Placement, conv_of, output_dtype, output_of, plan_of, read_dtype
from passes.shards import ConvShape, physical, staged_input_bytes

ELEMENT_BYTES = {"bfloat16": 2, "float32": 4}
# Bytes kept free between a program's circular buffers and the lowest live L1 buffer. Our allocator's
# addresses can differ from ttnn's after ops whose temporaries it does not track to the byte: real ttnn
# rejected the Wormhole Panoptic-DeepLab plan at 512x1024 with the instance ASPP's dilation-6 conv's CBs
# ending 64 B into a buffer this model placed clear of them (after a banded upsample); 1 KB did not change
# that plan, 4 KB does and leaves the committed blackhole-20 programs as they were.
CB_GUARD = 4096


class DoesNotFit(RuntimeError):
    """An allocation, a circular-buffer region or an op configuration that the device would reject."""


@dataclass(frozen=True)
class TensorState:
    """What decides a live activation's device buffer: [1, 1, rows, cols] at `placement`."""

    placement: Placement
    rows: int
    cols: int
    dtype: str
    layout: Layout


def buffer_bytes(t: TensorState, target: Target) -> int:
    """Bytes per bank of the tensor's buffer (0 in DRAM), as ttnn's allocator asks for them."""
    p = t.placement
    if p.buffer == "DRAM":
        return 0
    tile = t.layout == "TILE"
    if p.sharded:
        assert p.shard_shape is not None, "a sharded placement has a shard shape"
        sh, sw = p.shard_shape
        if tile:
            return cdiv(sh, TILE) * cdiv(sw, TILE) * cb_model.TILE_BYTES[t.dtype]
        return sh * round_up(sw * ELEMENT_BYTES[t.dtype], target.l1_alignment)
    if tile:
        pages, page = cdiv(t.rows, TILE) * cdiv(t.cols, TILE), cb_model.TILE_BYTES[t.dtype]
    else:
        pages, page = t.rows, t.cols * ELEMENT_BYTES[t.dtype]
    return cdiv(pages, target.num_cores) * round_up(page, target.l1_alignment)


# ------------------------------------------------------------------ what one op allocates


@dataclass(frozen=True)
class Alloc:
    kind: str  # "L1" | "L1_SMALL"
    size: int  # bytes per bank
    name: str | None = None  # a tensor that outlives the program; None: a temporary freed at its end


@dataclass(frozen=True)
class Program:
    """One device program: allocations in order, then the CB check; temporaries freed at the end."""

    allocs: tuple[Alloc, ...]
    cb: int = 0
    label: str = ""


@dataclass(frozen=True)
class Sliced:
    """DRAM slicing with ttnn's automatic count: the first slice count whose working set fits runs."""

    candidates: tuple[Program, ...]


@dataclass(frozen=True)
class Free:
    """A named buffer freed between programs (e.g. channel_affine's intermediate)."""

    name: str


Step = Program | Sliced | Free


def core_box(grid: tuple[int, int], count: int) -> tuple[int, int]:
    """(x, y) extent of the first `count` cores of `grid`, row by row (the generated `cores()`)."""
    rows, rest = divmod(count, grid[0])
    return (grid[0], rows + (1 if rest else 0)) if rows else (rest, 1)


@dataclass(frozen=True)
class Parallel:
    """A sharding as ttnn reads it back from a memory config: layout, core extent, cores."""

    layout: str
    grid: tuple[int, int]
    num_cores: int

    @classmethod
    def of(cls, p: Placement) -> Parallel | None:
        if p.buffer != "L1" or not p.sharded:
            return None
        assert p.grid is not None, "a sharded placement names its grid"
        count = p.num_cores if p.num_cores is not None else p.grid[0] * p.grid[1]
        return cls(p.layout, core_box(p.grid, count), count)

    @classmethod
    def default(cls, layout: str, grid: tuple[int, int], rows: int, cols: int) -> Parallel:
        cores = grid[0] * grid[1]
        if layout in ("HEIGHT_SHARDED", "WIDTH_SHARDED"):
            ntiles = cdiv(rows if layout == "HEIGHT_SHARDED" else cols, TILE)
            per_core = cdiv(ntiles, min(cores, ntiles))
            return cls(layout, grid, cdiv(ntiles, per_core))
        return cls(layout, grid, cores)

    def shard_shape(self, rows: int, cols: int) -> tuple[int, int]:
        if self.layout == "HEIGHT_SHARDED":
            return cdiv(cdiv(rows, TILE), self.num_cores) * TILE, cdiv(cols, TILE) * TILE
        if self.layout == "BLOCK_SHARDED":
            return cdiv(cdiv(rows, TILE), self.grid[1]) * TILE, cdiv(cdiv(cols, TILE), self.grid[0]) * TILE
        return cdiv(rows, TILE) * TILE, cdiv(cdiv(cols, TILE), self.num_cores) * TILE

    def geometry(self) -> dict:
        return dict(shard_layout=self.layout, grid=self.grid, num_cores=self.num_cores)


def _config_bytes(out_rows: int, num_cores: int) -> int:
    return round_up(2 * cdiv(out_rows, num_cores) + 64, 16)


def _conv_config_cb(out_rows: int, par: Parallel, act_block_h: int, matmul: bool) -> int:
    """The CB a conv (and its halo) reads its sliding-window config tensors into: the generated code keeps
    conv config tensors in DRAM (config_tensors_in_dram; in L1_SMALL ttnn keeps them for the module's
    life and they overflow it). Real ttnn 0.81.1's grows with the activation blocks a core runs, 8-30 B
    each, 8-416 B per core on the committed programs and 580 B for the channel-sliced ASPP conv's 16
    blocks; 32 B a block + 96 is above it. 1x1 stride-1 convs run as matmuls have none."""
    if matmul:
        return 0
    rows = round_up(cdiv(out_rows, cb_model.core_split(par.layout, par.grid, par.num_cores)[0]), TILE)
    return 32 * (cdiv(rows, act_block_h) if act_block_h else 1) + 96


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _candidates(requested: int, limit: int) -> tuple[int, ...]:
    return (requested,) if requested > 0 else tuple(n for n in (1, 2, 4, 8, 16, 32, 64) if n <= max(limit, 1))


def op_steps(
    n,
    ins: list[TensorState],
    out: TensorState,
    in_shapes: list[tuple[int, ...]],
    target: Target,
    applied_shard_scheme: str | None = None,
) -> list[Step]:
    """The programs one op runs, with its output named `n.name`. `ins` are its inputs as the op reads
    them (after moves and layout conversions); `in_shapes` their logical NCHW shapes."""
    out_alloc = Alloc("L1", buffer_bytes(out, target), n.name)
    out_allocs = (out_alloc,) if out_alloc.size else ()
    recipe = op_kind(n).memory
    if recipe not in _STEPS:
        raise ValueError(f"no L1 model for op {n.op!r} ({n.name}, memory recipe {recipe})")
    return _STEPS[recipe](n, ins, out, out_allocs, in_shapes, target, applied_shard_scheme)


def _conv_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    return _conv_steps(n, ins[0], out, out_allocs, in_shapes[0], target)


def _pool_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    return _pool_steps(n, ins[0], out_allocs, in_shapes[0], target, applied)


def _upsample_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    x = ins[0]
    if plan_of(n).slices is not None:
        return _upsample_band_steps(n, x, in_shapes[0], target)
    cores = [t.placement.num_cores if t.placement.sharded else None for t in (x, out)]
    if reason := legality.upsample_illegal(mode=n.attrs["mode"], input_cores=cores[0], output_cores=cores[1]):
        raise DoesNotFit(f"upsample: ttnn rejects it: {reason}")
    return _upsample_steps(n, x, out_allocs, in_shapes[0], target, out)


def _concat_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    x = ins[0]
    if reason := legality.concat_illegal([legality.Operand(t.layout, t.dtype, t.placement.sharded) for t in ins]):
        raise DoesNotFit(f"concat: ttnn rejects it: {reason}")
    cb = cb_model.concat_cb_bytes(
        input_channels=[s[1] for s in in_shapes], layout=x.layout, sharded=x.placement.sharded, dtype=x.dtype
    )
    return [Program(out_allocs, cb, "concat")]


def _eltwise_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    # UNARY and BINARY; an unfolded batch_norm (only the naive baseline keeps it) runs as UNARY
    x = ins[0]
    alike = (
        x.placement.sharded
        and out.placement.sharded
        and all(t.placement == x.placement for t in ins)
        and out.placement.num_cores == x.placement.num_cores
    )
    dtypes = tuple(t.dtype for t in ins) + (out.dtype,)
    return [Program(out_allocs, cb_model.eltwise_cb_bytes(dtypes=dtypes, sharded_alike=alike), n.op)]


def _affine_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    # x * scale (a temporary), then + shift; scale and shift are one row
    x, dtype = ins[0], plan_of(n).dtype
    scaled = Alloc("L1", buffer_bytes(out, target), n.name + ".scaled")
    mul = cb_model.eltwise_cb_bytes(dtypes=(x.dtype, dtype, dtype), sharded_alike=False, broadcast=True)
    add = cb_model.eltwise_cb_bytes(dtypes=(dtype,) * 3, sharded_alike=False, broadcast=True)
    return [
        Program((scaled,) if scaled.size else (), mul, "multiply"),
        Program(out_allocs, add, "add"),
        Free(n.name + ".scaled"),
    ]


def _resample_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    return _resample_steps(n, ins[0], out, in_shapes[0])


def _global_pool_op(n, ins, out, out_allocs, in_shapes, target, applied) -> list[Step]:
    # ttnn first makes the input interleaved in the output's buffer type (a copy program when the
    # input is interleaved elsewhere, sharded_to_interleaved when sharded), then reduces
    x = ins[0]
    staged = Placement(out.placement.buffer, MemoryLayout.INTERLEAVED)
    steps: list[Step] = []
    if x.placement != staged:
        copy = buffer_bytes(TensorState(staged, x.rows, x.cols, x.dtype, x.layout), target)
        steps.append(
            Program(
                (Alloc("L1", copy, f"{n.name}.staged"),) if copy else (),
                0 if x.placement.sharded else 2 * cb_model.TILE_BYTES[x.dtype],
                "copy",
            )
        )
    reduce = cb_model.reduce_programs(
        rows=x.rows, channels=x.cols, num_cores=target.num_cores, in_dtype=x.dtype, out_dtype=x.dtype
    )
    for (partial, cb), last in zip(reduce, [False] * (len(reduce) - 1) + [True], strict=True):
        allocs = out_allocs if last else (Alloc("L1", partial, f"{n.name}.partial"),)
        steps.append(Program(allocs, cb, "global_avg_pool2d"))
    return steps + [Free(f"{n.name}.staged"), Free(f"{n.name}.partial")]


# what each memory recipe (converter/ops: OpKind.memory) allocates
_STEPS = {
    Memory.CONV: _conv_op,
    Memory.POOL: _pool_op,
    Memory.UPSAMPLE: _upsample_op,
    Memory.CONCAT: _concat_op,
    Memory.UNARY: _eltwise_op,
    Memory.BINARY: _eltwise_op,
    Memory.AFFINE: _affine_op,
    Memory.RESAMPLE: _resample_op,
    Memory.GLOBAL_POOL: _global_pool_op,
}


def upsample_bands(h: int, bands: int) -> list[tuple[int, int]]:
    """Input rows [lo, hi) of each band of a banded bilinear upsample: its own rows plus one more on
    each side (what bilinear interpolation reads across the cut)."""
    rows = h // bands
    return [(max(b * rows - 1, 0), min((b + 1) * rows + 1, h)) for b in range(bands)]


def band_placement(rows: int, cols: int, target: Target) -> Placement:
    """A band on every core of the target, ROW_MAJOR height shards (the generated upsample_bands)."""
    return Placement(
        Buffer.L1, MemoryLayout.HEIGHT_SHARDED, target.grid, target.num_cores, (cdiv(rows, target.num_cores), cols)
    )


def _upsample_band_steps(n, x: TensorState, in_shape, target: Target) -> list[Step]:
    """A bilinear upsample whose output does not fit L1, in row bands (templates: upsample_bands):
    per band, its input rows sliced out of DRAM and moved to height shards, upsampled into height
    shards, the kept rows sliced to DRAM; then the bands concatenated (along H) in DRAM. A row-major
    slice between DRAM tensors streams through 8 KiB of CBs, the concat through two output sticks
    (measured)."""
    b, c, h, w = in_shape
    sh, sw = _pair(n.attrs["scale_factor"])
    slice_cb = 4 * cb_model.BF16_TILE
    steps: list[Step] = []
    bands = plan_of(n).slices
    assert bands is not None, "memory planning set the row bands"
    for lo, hi in upsample_bands(h, bands[1]):
        band = TensorState(band_placement((hi - lo) * w, c, target), (hi - lo) * w, c, x.dtype, x.layout)
        up = TensorState(
            band_placement((hi - lo) * w * sh * sw, c, target), (hi - lo) * w * sh * sw, c, x.dtype, x.layout
        )
        steps += [
            Program((), slice_cb, "slice of the band"),
            Program((Alloc("L1", buffer_bytes(band, target), f"{n.name}.band"),), 0, "upsample band"),
            *_upsample_steps(
                n, band, (Alloc("L1", buffer_bytes(up, target), f"{n.name}.up"),), (b, c, hi - lo, w), target
            ),
            Free(f"{n.name}.band"),
            Program((), slice_cb, "slice of the kept rows"),
            Free(f"{n.name}.up"),
        ]
    return steps + [Program((), 2 * c * cb_model.DATUM_BYTES["bfloat16"], "concat of the bands")]


def _conv_steps(n, x: TensorState, out: TensorState, out_allocs, in_shape, target: Target) -> list[Step]:
    plan, cc = plan_of(n), conv_of(n)
    s = ConvShape.of(n, in_shape)
    if cc.channel_slices > 1:  # one input-channel group at a time (its own slice of the DRAM input)
        s = s.channel_part(cc.channel_slices)
    if cc.grid is not None and cc.num_cores:
        par = Parallel(cc.shard_layout, core_box(cc.grid, cc.num_cores), cc.num_cores)
    else:
        existing = Parallel.of(x.placement)
        par = (
            existing
            if existing and existing.layout == cc.shard_layout
            else Parallel.default(cc.shard_layout, target.grid, s.out_rows, s.out_channels)
        )
    geo = dict(
        batch=s.batch,
        input_hw=s.input_hw,
        kernel_size=_pair(s.kernel_size),
        stride=_pair(s.stride),
        padding=_pair(s.padding),
        dilation=_pair(s.dilation),
        **par.geometry(),
    )

    conv = dict(
        **geo,
        in_channels=s.in_channels,
        out_channels=s.out_channels,
        groups=s.groups,
        act_block_h=cc.act_block_h,
        act_block_w_div=cc.act_block_w_div,
        input_dtype=x.dtype,
        weights_dtype=plan.weights_dtype or "bfloat16",
        output_dtype=plan.dtype,
        enable_act_double_buffer=cc.enable_act_double_buffer,
        enable_weights_double_buffer=cc.enable_weights_double_buffer,
        fp32_dest_acc=plan.fp32_dest_acc,
        num_slices=cc.num_slices,
        device_grid=target.grid,
        output_layout=plan.layout,
        slice_type=cc.slice_type,
    )
    matmul = cb_model.conv_is_matmul(
        kernel_size=geo["kernel_size"],
        stride=geo["stride"],
        padding=geo["padding"],
        dilation=geo["dilation"],
        shard_layout=cc.shard_layout,
        groups=s.groups,
    )
    parts = cb_model.conv2d_slices(**conv)
    if parts:
        steps = _sliced_conv_programs(n.name, s, par, parts, cc.act_block_h, matmul)
    else:
        steps = _conv_programs(n.name, s, x, par, cb_model.conv2d_l1(**conv), out, out_allocs, cc.act_block_h, matmul)
    if cc.channel_slices > 1:  # per group: its channels sliced out of DRAM, the partial conv, the join in DRAM
        steps = [Program((), 2 * cb_model.TILE_BYTES[x.dtype], "slice of the channel group"), *steps]
        if n.attrs["groups"] == 1:  # partial sums; a grouped conv's parts are its own output channels
            add = cb_model.eltwise_cb_bytes(dtypes=(plan.dtype,) * 3, sharded_alike=False)
            steps.append(Program((), add, "sum of the partial convs"))
        else:
            concat = cb_model.concat_cb_bytes(
                input_channels=[s.out_channels] * cc.channel_slices, layout="TILE", sharded=False, dtype=plan.dtype
            )
            steps.append(Program((), concat, "concat of the partial convs"))
    return steps


def _sliced_conv_programs(
    name: str, s: ConvShape, par: Parallel, parts: list[cb_model.ConvSlice], act_block_h: int, matmul: bool
) -> list[Step]:
    """A DRAM-sliced ttnn.conv2d, slice after slice, in the order of real ttnn 0.81.1's graph traces
    (see cb_model.ConvSlice); the result is written to DRAM by each slice's SliceWrite."""
    inp, copy, halo, out, rm = (f"{name}.{t}" for t in ("input", "reshard", "halo", "out", "untilized"))
    steps: list[Step] = []
    config_cb = _conv_config_cb(cdiv(s.out_rows, len(parts)), par, act_block_h, matmul)
    for p in parts:
        steps.append(Program((Alloc("L1", p.input, inp),), p.slice_cb, "conv2d input slice"))
        src = inp
        if p.reshard:  # reshard into a copy, the slice freed, the copy moved (ttnn::move)
            steps += [
                Program((Alloc("L1", p.reshard, copy),), 0, "conv2d slice reshard"),
                Free(inp),
                Free(copy),
                Program((Alloc("L1", p.reshard, copy),), 0, "conv2d slice reshard move"),
            ]
            src = copy
        if p.halo:
            steps += [
                Program((Alloc("L1", p.halo, halo),), p.halo_cb + config_cb, "halo"),
                Free(src),
                Free(halo),
                Program((Alloc("L1", p.halo, halo),), 0, "halo move"),
            ]
        steps.append(Program((Alloc("L1", p.output, out),), p.cb + config_cb, f"conv2d[slice of {len(parts)}]"))
        steps.append(Free(halo if p.halo else src))
        out_buffer = out
        if p.interleaved:  # a WIDTH-sharded ROW_MAJOR result: to L1-interleaved tiles first
            steps += [
                Program((Alloc("L1", p.interleaved, f"{name}.interleaved"),), 0, "conv2d slice to interleaved"),
                Free(out),
            ]
            out_buffer = f"{name}.interleaved"
        if p.untilize:  # a ROW_MAJOR result: the conv's tiles untilized into a copy
            steps += [Program((Alloc("L1", p.untilize, rm),), p.untilize_cb, "conv2d slice untilize"), Free(out_buffer)]
            out_buffer = rm
        if p.write_cb:
            steps.append(Program((), p.write_cb, "conv2d slice write"))
        steps.append(Free(out_buffer))
    return steps


def _conv_programs(
    name: str,
    s: ConvShape,
    x: TensorState,
    par: Parallel,
    sizes: cb_model.ConvL1,
    out: TensorState,
    out_allocs,
    act_block_h: int,
    matmul: bool,
) -> list[Step]:
    """ttnn.conv2d's programs in the order real ttnn 0.81.1 runs them (read from its graph traces):
    the input resharded into a temporary when it is not sharded as the conv runs; the halo op,
    which frees that temporary, then `ttnn::move`s its output (free + allocate, so it lands as high
    as it fits); the conv (or, for 1x1 stride-1 convs, the matmul) with its output always
    L1-sharded like the conv; a DRAM destination (also of a DRAM-sliced matmul conv, which ttnn runs
    whole) is a copy made afterwards, the sharded output then freed."""
    sh, sw = par.shard_shape(s.in_rows, s.in_channels)
    in_copy = round_up(staged_input_bytes(sh, sw, x.dtype), 16)
    needs_copy = Parallel.of(x.placement) != par
    to_dram = out.placement.buffer == "DRAM"
    config_cb = _conv_config_cb(s.out_rows, par, act_block_h, matmul)
    steps: list[Step] = []
    tag = f"{name}.input"
    if needs_copy:
        steps.append(Program((Alloc("L1", in_copy, tag),), 0, "conv2d reshard"))
    if sizes.halo:
        # a TILE input (a channel group sliced from a tiled DRAM tensor) is untilized by the halo itself
        untilize = cb_model.halo_cb_bytes(channels_per_core=sw, tiled_input=True) if x.layout == "TILE" else 0
        steps += [Program((Alloc("L1", sizes.halo, f"{name}.halo"),), config_cb + untilize, "halo")]
        if needs_copy:
            steps.append(Free(tag))
        steps += [Free(f"{name}.halo"), Program((Alloc("L1", sizes.halo, f"{name}.halo"),), 0, "halo move")]
    result = (Alloc("L1", sizes.output, f"{name}.out"),) if to_dram else out_allocs
    steps.append(Program(tuple(result), sizes.cb + config_cb, "conv2d"))
    if sizes.halo:
        steps.append(Free(f"{name}.halo"))
    elif needs_copy:
        steps.append(Free(tag))
    if to_dram:
        steps.append(Free(f"{name}.out"))
    return steps


def _rows_per_core(out_rows: int, cores_nhw: int) -> int:
    """Output rows per core of a pool or upsample: whole tiles."""
    return round_up(cdiv(out_rows, cores_nhw), TILE)


def _upsample_steps(
    n, x: TensorState, out_allocs, in_shape, target: Target, out: TensorState | None = None
) -> list[Step]:
    """ttnn.upsample. Bilinear (sharded input) runs a halo (3x3 windows, padding 1) then the upsample
    into its own height shards (the output rows split evenly over `out`'s cores), which a reshard
    copies to `out`'s shards when their heights differ (measured); the halo's output is freed last."""
    b, c, h, w = in_shape
    mode = n.attrs["mode"]
    par = Parallel.of(x.placement)
    shard = x.placement.shard_shape or (x.rows, c)  # (an interleaved input: one shard of everything)
    c_core = c if par is None or par.layout == "HEIGHT_SHARDED" else shard[1]
    cb = cb_model.upsample_cb_bytes(
        channels_per_core=c_core,
        mode=mode,
        layout=x.layout,
        sharded=par is not None,
        rows=x.rows,
        num_cores=target.num_cores,
    )
    if mode != "bilinear":
        return [Program(out_allocs, cb, "upsample")]
    halo = cb_model.bilinear_halo_bytes(
        batch=b,
        input_hw=(h, w),
        scale=_pair(n.attrs["scale_factor"]),
        num_cores=par.num_cores if par is not None else 1,
        channels_per_core=c_core,
    )
    config = Alloc("L1_SMALL", round_up(2 * (shard[0] + 2 * w) + 64, 16))
    steps: list[Step] = [
        Program(
            (config, Alloc("L1", round_up(halo, 16), f"{n.name}.halo")),
            cb_model.halo_cb_bytes(channels_per_core=c_core, tiled_input=False),
            "halo",
        )
    ]
    sh, sw = _pair(n.attrs["scale_factor"])
    p = out.placement if out is not None else None
    own_rows = cdiv(b * h * w * sh * sw, p.num_cores) if p is not None and p.sharded and p.num_cores else 0
    if own_rows and p is not None and p.shard_shape is not None and p.shard_shape[0] != own_rows:
        own = own_rows * round_up(c * ELEMENT_BYTES["bfloat16"], target.l1_alignment)
        return steps + [
            Program((Alloc("L1", own, f"{n.name}.own"),), cb, "upsample"),
            Program(out_allocs, 0, "upsample reshard"),
            Free(f"{n.name}.own"),
            Free(f"{n.name}.halo"),
        ]
    return steps + [Program(out_allocs, cb, "upsample"), Free(f"{n.name}.halo")]


def _resample_steps(n, x: TensorState, out: TensorState, in_shape) -> list[Step]:
    """templates' resample(): permute the ROW_MAJOR [N, H, W, C] view to [N, C, H, W], tilize it, a matmul
    with cols over W, one with rows over H, untilize, permute back. Every tensor in DRAM (memory_plan),
    so only circular buffers: one program after another."""
    if x.placement.buffer != "DRAM" or out.placement.buffer != "DRAM" or x.layout != "ROW_MAJOR":
        raise DoesNotFit("resample: runs on ROW_MAJOR DRAM tensors only")
    _, _, h, w = in_shape
    oh, ow = n.out.shape[2:]
    dt = out.dtype
    layout = cb_model.layout_cb_bytes
    return [
        Program((), cb_model.PERMUTE_RM_CB_BYTES, "resample permute"),
        Program((), layout(channels=w, to="TILE", sharded=False, in_dtype=x.dtype, out_dtype=dt), "resample tilize"),
        Program(
            (),
            cb_model.resample_matmul_cb_bytes(k=w, n=ow, in0_dtype=dt, in1_dtype=dt, out_dtype=dt),
            "resample matmul over W",
        ),
        Program(
            (),
            cb_model.resample_matmul_cb_bytes(k=h, n=ow, in0_dtype=dt, in1_dtype=dt, out_dtype=dt),
            "resample matmul over H",
        ),
        Program((), cb_model.resample_untilize_cb_bytes(width=ow, dtype=dt), "resample untilize"),
        Program((), cb_model.PERMUTE_RM_CB_BYTES, "resample permute back"),
    ]


def _pool_steps(n, x: TensorState, out_allocs, in_shape, target: Target, applied: str | None) -> list[Step]:
    """max/avg pool as ttnn runs it: an interleaved input is first sharded into a copy; the halo
    (which frees that copy), then Pool2D (which frees the halo's output). With DRAM slicing, slice by
    slice (cb_model.pool_slices); the output, written slice by slice, is in DRAM."""
    a = n.attrs
    b, c, ih, iw = in_shape
    in_rows = b * ih * iw
    out_rows = n.out.shape[0] * n.out.shape[2] * n.out.shape[3]
    par = Parallel.of(x.placement) or Parallel.default(applied or "HEIGHT_SHARDED", target.grid, in_rows, c)
    kernel = _pair(a["kernel_size"])
    window = dict(
        kernel_size=kernel,
        stride=_pair(a["stride"]),
        padding=_pair(a["padding"]),
        dilation=_pair(a.get("dilation", (1, 1))),
    )
    cores_nhw, cores_c = cb_model.core_split(par.layout, par.grid, par.num_cores)
    c_core = round_up(c, TILE * cores_c) // cores_c if cores_c > 1 else c
    config = Alloc("L1_SMALL", _config_bytes(out_rows, par.num_cores))
    slices = plan_of(n).slices
    sliced = (slices is not None and slices[0] != "L1_FULL") or (slices is None and x.placement.buffer == "DRAM")
    if not sliced:
        steps: list[Step] = []
        if not x.placement.sharded:
            sh, sw = par.shard_shape(in_rows, c)
            copy = TensorState(
                Placement(Buffer.L1, MemoryLayout(par.layout), par.grid, par.num_cores, (sh, sw)),
                in_rows,
                c,
                x.dtype,
                x.layout,
            )
            steps.append(
                Program((Alloc("L1", buffer_bytes(copy, target), f"{n.name}.sharded"),), 0, "interleaved_to_sharded")
            )
        own = cb_model.pool_halo_bytes(
            batch=b,
            input_hw=(ih, iw),
            rows_per_core=_rows_per_core(out_rows, cores_nhw),
            channels_per_core=c_core,
            **window,
        )
        halo_cb = cb_model.halo_cb_bytes(channels_per_core=c_core, tiled_input=x.layout == "TILE")
        pool_cb = cb_model.pool2d_cb_bytes(channels_per_core=c_core, kernel_size=kernel, output_dtype=plan_of(n).dtype)
        return steps + [
            Program((config, Alloc("L1", round_up(own, 16), f"{n.name}.halo")), halo_cb, "halo"),
            Free(f"{n.name}.sharded"),
            Program(out_allocs, pool_cb, n.op),
            Free(f"{n.name}.halo"),
        ]

    def programs(kind: str, k: int) -> list[Step]:
        parts = cb_model.pool_slices(
            batch=b,
            input_hw=(ih, iw),
            channels=c,
            **window,
            slice_type=kind,
            num_slices=k,
            num_cores=target.num_cores,
            input_dtype=x.dtype,
            output_dtype=plan_of(n).dtype,
        )
        inp, halo, out = (f"{n.name}.{t}" for t in ("input", "halo", "out"))
        steps: list[Step] = []
        for p in parts:
            steps += [
                Program((Alloc("L1", p.input, inp),), p.slice_cb, f"{n.op} input slice"),
                Program((config, Alloc("L1", p.halo, halo)), p.halo_cb, "halo"),
                Free(inp),
                Program((Alloc("L1", p.output, out),), p.cb, f"{n.op}[slice of {len(parts)}]"),
                Free(halo),
                Free(out),
            ]
        return steps

    output: list[Step] = [Program(out_allocs, 0, f"{n.op} output")] if out_allocs else []  # (made first)
    if slices is not None and slices[1] > 0:
        return output + programs(slices[0], slices[1])
    # ttnn's automatic count: the first whose largest slice fits (its programs' working set as one
    # bound), along the dimension op_slicing.cpp's best_guess_slice_type picks for a TILE output
    kind = "DRAM_SLICE_HEIGHT" if iw < 200 or ih > iw else "DRAM_SLICE_WIDTH"

    def largest(k: int) -> Program:
        p = max(
            cb_model.pool_slices(
                batch=b,
                input_hw=(ih, iw),
                channels=c,
                **window,
                slice_type=kind,
                num_slices=k,
                num_cores=target.num_cores,
                input_dtype=x.dtype,
                output_dtype=plan_of(n).dtype,
            ),
            key=lambda p: p.input + p.halo + p.output,
        )
        return Program(
            (config, Alloc("L1", p.input), Alloc("L1", p.halo), Alloc("L1", p.output)),
            max(p.slice_cb, p.halo_cb, p.cb),
            f"{n.op}[{k} slices]",
        )

    return output + [Sliced(tuple(largest(k) for k in _candidates(0, out_rows)))]


# ------------------------------------------------------------------ the simulated memory


@dataclass
class L1Sim:
    """L1 and L1_SMALL of one core (every core alike: lock-step), with the address of each live buffer."""

    target: Target
    l1_small_size: int
    l1: FreeList = field(init=False)
    small: FreeList = field(init=False)
    addr: dict[str, int] = field(default_factory=dict)
    # ("+"|"-"|"cb", address, bytes), or ("sliced", the slice count chosen, 0), when given a list
    log: list[tuple[str, int | str, int]] | None = None
    peak: int = 0  # most CB + L1 + L1_SMALL bytes any program needed
    op_peak: int = 0  # the same since the current op began (moves and reallocations included)
    # when a list: each program `run` launches, as (label, CB bytes, L1 and L1_SMALL bytes of the
    # buffers allocated since `own()` that are live while it runs), for comparing with real ttnn
    programs: list[tuple[str, int, int, int]] | None = None
    owned: dict[tuple[bool, int], int] = field(default_factory=dict)  # (small, address) -> bytes

    def __post_init__(self) -> None:
        t = self.target
        self.base = t.l1_bytes_per_core - t.l1_unreserved_per_core
        top = t.l1_bytes_per_core - self.l1_small_size
        self.l1 = FreeList(self.base, top, True)
        self.small = FreeList(top, t.l1_bytes_per_core, True)

    def copy(self) -> L1Sim:
        new = L1Sim.__new__(L1Sim)
        new.target, new.l1_small_size, new.base = self.target, self.l1_small_size, self.base
        new.l1, new.small, new.addr, new.peak = self.l1.copy(), self.small.copy(), dict(self.addr), self.peak
        new.op_peak, new.log = self.op_peak, None
        new.programs, new.owned = (None if self.programs is None else []), dict(self.owned)
        return new

    def own(self) -> None:
        """Programs recorded from here on count the buffers allocated from here on as their own."""
        self.owned = {}

    # --- buffers -------------------------------------------------------------------------------
    def _alloc(self, free: FreeList, size: int, what: str) -> int:
        size = round_up(max(size, 1), self.target.l1_alignment)
        addr = free.allocate(size, self.target.l1_alignment)
        if addr is None:
            largest = max((length for _, length in free.free_blocks()), default=0)
            raise DoesNotFit(f"{what}: no free block of {size} B (largest {largest} B, allocated {free.allocated} B)")
        if self.log is not None and free is self.l1:
            self.log.append(("+", addr, size))
        if self.programs is not None:
            self.owned[(free is self.small, addr)] = size
        return addr

    def _release(self, free: FreeList, addr: int) -> None:
        if self.log is not None and free is self.l1:
            self.log.append(("-", addr, free.sizes[addr]))
        self.owned.pop((free is self.small, addr), None)
        free.release(addr)

    def alloc(self, name: str, size: int) -> None:
        """A tensor made by a data-movement program (a copy, a layout change): recorded like one."""
        if size:
            self.addr[name] = self._alloc(self.l1, size, name)
        self._record(0)

    def free(self, name: str) -> None:
        if name in self.addr:
            self._release(self.l1, self.addr.pop(name))

    def move(self, name: str, size: int) -> None:
        """A move (to_memory_config, to_layout replacing its source): the new copy first, then the old freed."""
        old = self.addr.pop(name, None)
        if size:
            self.addr[name] = self._alloc(self.l1, size, name)
        self._record(0)
        if old is not None:
            self._release(self.l1, old)

    def reallocate(self, name: str) -> None:
        """ttnn.reallocate: free, then allocate again (top-down, so it lands as high as it fits)."""
        size = self.l1.sizes[self.addr[name]]
        self.free(name)
        self.alloc(name, size)

    def rename(self, old: str, new: str) -> None:
        if old in self.addr:
            self.addr[new] = self.addr.pop(old)

    def _record(self, cb: int) -> int:
        used = cb + self.l1.allocated + self.small.allocated
        self.peak = max(self.peak, used)
        self.op_peak = max(self.op_peak, used)
        return used

    def lowest(self) -> int | None:
        lows = [a for a in (self.l1.lowest(), self.small.lowest()) if a is not None]
        return min(lows) if lows else None

    # --- programs ------------------------------------------------------------------------------
    def run(self, steps: list[Step]) -> int:
        """Run an op's programs; returns the most bytes one of them needed (CB + L1 + L1_SMALL)."""
        peak = 0
        for step in steps:
            if isinstance(step, Free):
                self.free(step.name)
            elif isinstance(step, Program):
                peak = max(peak, self._program(step))
            else:
                failure: DoesNotFit | None = None
                for program in step.candidates:
                    trial = self.copy()
                    try:
                        used = trial._program(program)
                    except DoesNotFit as err:
                        failure = err
                        continue
                    if self.log is not None:
                        self.log.append(("sliced", program.label, 0))
                    if self.programs is not None and trial.programs is not None:
                        self.programs += trial.programs
                    self.l1, self.small, self.addr, self.owned = trial.l1, trial.small, trial.addr, trial.owned
                    peak = max(peak, used)
                    break
                else:
                    raise failure or DoesNotFit("no slice count fits")
        self.peak = max(self.peak, peak)
        self.op_peak = max(self.op_peak, peak)
        return peak

    def _program(self, p: Program) -> int:
        temps: list[tuple[FreeList, int]] = []
        for a in p.allocs:
            free = self.small if a.kind == "L1_SMALL" else self.l1
            addr = self._alloc(free, a.size, f"{p.label} {'output' if a.name else 'temporary'}")
            if a.name:
                self.addr[a.name] = addr
            else:
                temps.append((free, addr))
        end = self.base + p.cb
        lowest = self.lowest()
        if end > self.target.l1_bytes_per_core or (lowest is not None and end + CB_GUARD > lowest):
            raise DoesNotFit(f"{p.label}: circular buffers end at {end}, L1 buffer at {lowest}")
        used = self._record(p.cb)
        if self.log is not None:
            self.log.append(("cb", end, p.cb))
        if self.programs is not None:
            self.programs.append(
                (
                    p.label,
                    p.cb,
                    sum(v for (small, _), v in self.owned.items() if not small),
                    sum(v for (small, _), v in self.owned.items() if small),
                )
            )
        for free, addr in temps:
            self._release(free, addr)
        return used


# ------------------------------------------------------------------ a planned op, as generated code runs it


def simulate_op(sim: L1Sim, live: dict[str, TensorState], n, shapes: dict[str, tuple[int, ...]], target: Target) -> int:
    """Apply one planned op to `sim` and `live` (name -> state) in the generated code's order:
    reallocations, moves (spills, reshards), layout conversions, the op, then deallocations.
    (The caller's input, which the code never frees, is in DRAM; a move of it makes a copy the code
    owns and frees.) Returns the op's peak bytes, the moments its moves hold two copies included."""
    plan = plan_of(n)
    sim.op_peak = 0
    for x in plan.reallocate_before:
        sim.reallocate(x)
    for x, p in (*plan.spill_before, *plan.reshard_inputs):
        live[x] = TensorState(p, live[x].rows, live[x].cols, live[x].dtype, live[x].layout)
        sim.move(x, buffer_bytes(live[x], target))
    if is_output(n):
        return sim.op_peak
    dead = set(plan.deallocate_after)
    reads: dict[str, TensorState] = {}
    for x, layout in plan.layout_inputs:
        src = live[x]
        reads[x] = TensorState(
            physical(src.placement, src.cols, layout), src.rows, src.cols, read_dtype(src.dtype, layout), layout
        )
        sim.alloc(f"{x}@{layout}", buffer_bytes(reads[x], target))
        if x in dead:  # its last reader reads the converted copy: freed right away
            sim.free(x)
    ins = [reads.get(x, live[x]) for x in n.inputs]
    rows, cols = n.out.shape[0] * n.out.shape[2] * n.out.shape[3], n.out.shape[1]
    out = TensorState(output_of(n), rows, cols, output_dtype(n, ins[0].dtype), plan.layout)
    applied = (
        out.placement.layout
        if op_kind(n).memory is Memory.POOL and out.placement.sharded and not ins[0].placement.sharded
        else None
    )
    sim.own()
    if sim.programs is not None:
        sim.programs.clear()
    sim.run(op_steps(n, ins, out, [shapes[x] for x in n.inputs], target, applied))
    live[n.name] = out
    for x, layout in plan.layout_inputs:
        sim.free(f"{x}@{layout}")
    for x in plan.deallocate_after:
        sim.free(x)
        live.pop(x, None)
    return sim.op_peak


def op_programs(graph, target: Target, l1_small_size: int) -> dict[str, list[tuple[str, int, int, int]]]:
    """Replay a planned graph as the generated code runs it; per device op, the programs its own ttnn
    call launches (not its moves or layout conversions) as `L1Sim.programs` records them."""
    sim = L1Sim(target, l1_small_size, programs=[])
    live: dict[str, TensorState] = {}
    shapes = {n.name: tuple(n.out.shape) for n in graph.nodes}
    out = {}
    for n in graph.nodes:
        if is_input(n):
            rows, cols = n.out.shape[0] * n.out.shape[2] * n.out.shape[3], n.out.shape[1]
            live[n.name] = TensorState(output_of(n), rows, cols, plan_of(n).dtype, plan_of(n).layout)
            continue
        simulate_op(sim, live, n, shapes, target)
        if not is_output(n):
            out[n.name] = list(sim.programs or ())
    return out
