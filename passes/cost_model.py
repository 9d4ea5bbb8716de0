"""ANALYSIS: modeled device time of each op, and of a whole planned graph, on a target.

There is no hardware here, so device time is a model, kept small enough to check by hand:

    op time = max(compute, data) + OVERLAP_LOSS * min(compute, data)
              + device_ops * DEVICE_OP_US + dram_programs * DRAM_OP_US
    compute = padded matmul (or vector) cycles per core / (clock * efficiency), on the cores the
              op's sharding really uses
    data    = DRAM bytes / achievable DRAM bandwidth  +  NoC bytes per core / per-core NoC bandwidth
    reshard = every to_memory_config move memory planning put before the op, costed like an op

The max() says compute and data movement overlap (ttnn's reader, compute and writer kernels run
concurrently); OVERLAP_LOSS says they never overlap perfectly, which also keeps the model strictly
monotone in both FLOPs and bytes. `device_ops` counts the device programs one graph node becomes
(a DRAM-sliced conv is a slice read, a halo, a conv and a slice write per slice).

What it predicts: the sum of device kernel durations of one cold, untraced forward (`PlanCost.total_ms`,
what Tenstorrent's device perf test measures), and with trace replay the same plus the op-to-op gaps
(`PlanCost.traced_ms`). Where real ttnn on a mock device shows the program an op becomes, that program
is costed: a pointwise conv that ttnn slices by itself on a DRAM input is one matmul straight on the
DRAM tensors (benchmarks/probe_auto_slices.py); a channel-sliced conv is its slices, partial convs
and adds (tt_cnn's builder).

Constants come with their source. Those nobody publishes (conv matrix efficiency, fixed time per
device program, the rate of ttnn's DRAM-fed matmul) are fitted to the hand-written model's measured
device history (see `CALIBRATION`); the compute/data overlap is not identifiable from it and keeps its
earlier value. Ignored on purpose: fp32 dest accumulation (it only halves the DST tiles per sub-block),
NoC congestion and hop latency, DRAM bank conflicts, host dispatch (the device perf test sums device
kernel durations, which exclude it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from converter.ir import Graph, Node
from converter.ops import Cost, Work, is_host, op_kind
from hardware.targets import TILE, Target
from passes import cb_model, shards
from passes.cb_model import cdiv
from passes.plan import DRAM_INTERLEAVED, OpPlan, Placement, plan_of

# --- Hardware constants (cited) ---------------------------------------------------------------
# The matrix engine does 8x16 @ 16x16 per cycle = 4096 FLOPs/cycle/core at LoFi; one 32x32x32
# tile matmul takes 16/32/48/64 cycles at LoFi/HiFi2/HiFi3/HiFi4.
# (tenstorrent/tt-metal tech_reports/matrix_engine/matrix_engine.md; GEMM_FLOPS/GEMM_FLOPS.md,
# "Utilization derivation formula"; both say the numbers hold for Wormhole and Blackhole.)
CYCLES_PER_TILE_MATMUL = {"LoFi": 16, "HiFi2": 32, "HiFi3": 48, "HiFi4": 64}
# FPU eltwise add/sub/mul: 8x16 elements per cycle; reduce max/sum: 16x16 per cycle
# (matrix_engine.md, "Eltwise" and "Reduction"). Eltwise mul and reduce-sum divide by fidelity.
ELTWISE_ELEMS_PER_CYCLE = 128
REDUCE_ELEMS_PER_CYCLE = 256
FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
# SFPU: 32-wide SIMD (tt-isa-documentation WormholeB0/TensixTile/README.md). A relu is a load,
# a max and a store per 32-lane row: ~3 instructions, i.e. ~32/3 elements per cycle (our estimate
# from the instruction count, not a measurement).
SFPU_ELEMS_PER_CYCLE = 32 / 3
# NoC: a core's reads arrive on one NoC (ttnn readers use one, writers the other). Achievable:
# one-to-one Blackhole 60 of 64 B/cycle, Wormhole 29 of 32; one-to-all multicast Blackhole 24,
# Wormhole 15 B/cycle (tt-low-level-documentation data_movement_doc/general/ideal_performance.md,
# via docs/research/handwritten-pdl-and-cost-constants.md section 3).
NOC_EFFICIENCY = 60 / 64
MCAST_EFFICIENCY = 24 / 64
# DRAM: the tt-npe Blackhole model serves 54 GB/s per bank, 8 banks = 432 of 512 GB/s
# (tenstorrent/tt-npe device_models/blackhole.hpp, via the research note section 3).
DRAM_EFFICIENCY = 432 / 512
# Gap between one device program's end and the next one's start when a captured trace is replayed:
# 2-5 us (tech_reports/LLMs/llms.md section 4.6); the middle. Not in the device perf test's sum.
TRACE_GAP_US = 3.5

# --- Calibrated (genuinely uncertain; see CALIBRATION) ----------------------------------------
# Share of the peak matrix rate a conv reaches. GEMM reaches 60-96% (GEMM_FLOPS.md); a conv also
# gathers im2col windows, tilizes every activation block and reloads partials between kernel rows,
# on the same cores, and nobody publishes that rate.
MATMUL_EFFICIENCY = 0.4162
# Fraction of the shorter of compute and data movement not hidden behind the longer one.
OVERLAP_LOSS = 0.4
# Fixed device-kernel time per device program (kernel start, runtime args, CB/semaphore setup,
# the final barrier). The anchor sums device kernel durations, so the op-to-op gap (2-5 us traced,
# tech_reports/LLMs/llms.md section 4.6) is not part of it.
DEVICE_OP_US = 5.0
# Further fixed time of a device program that moves activations to or from DRAM interleaved (slice reads
# and writes, moves, DRAM-fed eltwise, matmuls on DRAM tensors): page-by-page NoC requests to 8 banks whose
# first bytes come after DRAM latency, on every core, which a per-byte bandwidth does not see. The
# 110-core history needs it: the same constants cannot price both Tenstorrent's DRAM-heavy 20-core plan run
# on 110 cores (645aa768) and its L1-resident plans (7cc8755a and later) without it.
DRAM_OP_US = 14.53
# Matrix rate of a 1x1 conv that ttnn runs as one matmul straight on DRAM-interleaved tensors (its
# automatic slicing of a DRAM input: benchmarks/probe_auto_slices.py), relative to the peak. The fit puts
# it ~100x below a sharded conv's. Only 3d736fd9 has such convs, and there their inputs were 4-D
# [1, H, W, C] (d615fab9 added the flattening reshapes): ttnn then loops H as a batch on 8 cores, 512-2048
# small matmuls per conv, ~2.8 us each at this rate (docs/research/dram-matmul.md). A flat input, as ours
# always are, runs as one multicast matmul near the ordinary rate.
DRAM_MATMUL_EFFICIENCY = 0.003993

CALIBRATION = (
    "MATMUL_EFFICIENCY=0.4162, DEVICE_OP_US=5.0, DRAM_OP_US=14.53, DRAM_MATMUL_EFFICIENCY=0.003993 "
    "(OVERLAP_LOSS=0.4 kept): benchmarks/calibrate.py's fit (Nelder-Mead on squared log errors) to Tenstorrent's "
    "measured device time of its hand-written Panoptic-DeepLab, each code state planned as ours "
    "(benchmarks/measured/): fitted on 3d736fd9 (51.75/34.39 ms PANOPTIC_DEEPLAB/DEEPLAB_V3_PLUS), 76f4537d "
    "(30.54/21.93) on blackhole-20 and 645aa768's 110-core case (12.45/8.47); DEVICE_OP_US at the top of its "
    "published range (<= 5 us). Held out: d615fab9, 6f31950c (-3.8%..+0.4%) and the L1-resident 110-core "
    "states 7cc8755a (7.16/4.56), 8382c472 (6.26/4.38), PR #38216 (6.34/4.18), PR #44832 (DLv3+ 3.85): "
    "+8%..+23%, the model too slow there; the 645aa768 -> 7cc8755a step modeled 1.52x/1.57x (measured "
    "1.74x/1.86x). DRAM_MATMUL_EFFICIENCY stands for 3d736fd9's pointwise convs on 4-D DRAM inputs, which "
    "ttnn ran as hundreds of small sequential matmuls (docs/research/dram-matmul.md)."
)


@dataclass(frozen=True)
class Operand:
    """One input tensor of an op as the device holds it when the op runs."""

    shape: tuple[int, ...]  # logical NCHW
    dtype: str  # device dtype (plan.py DTYPES)
    placement: Placement


@dataclass(frozen=True)
class OpCost:
    """Modeled device time of one op, in microseconds, with the bytes and FLOPs behind it."""

    compute_us: float
    dram_us: float  # DRAM traffic time (part of data movement)
    noc_us: float  # on-chip L1-to-L1 traffic time: halo, multicast, interleaved L1 (data movement)
    reshard_us: float  # to_memory_config moves before the op, each a full device op
    dispatch_us: float  # fixed per-device-program time
    flops: int  # real FLOPs (no padding)
    dram_bytes: int  # bytes read from and written to DRAM, reshards included
    device_ops: int
    cores: int = 0  # cores the op itself runs on

    @property
    def data_us(self) -> float:
        return self.dram_us + self.noc_us

    @property
    def total_us(self) -> float:
        hi, lo = max(self.compute_us, self.data_us), min(self.compute_us, self.data_us)
        return hi + OVERLAP_LOSS * lo + self.dispatch_us + self.reshard_us


ZERO_COST = OpCost(0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0)


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def tensor_bytes(shape: Sequence[int], dtype: str) -> int:
    """Device bytes of an NCHW activation ([1, 1, N*H*W, C] in whole tiles)."""
    n, c, h, w = (tuple(shape) + (1, 1, 1, 1))[:4]
    return shards.tensor_bytes(n * h * w, c, dtype)


def _noc_us(unicast: float, multicast: float, target: Target) -> float:
    """Time for one core to receive `unicast` + `multicast` bytes over its reader NoC."""
    per_us = target.noc_bytes_per_cycle * target.clock_ghz * 1e3
    return unicast / (per_us * NOC_EFFICIENCY) + multicast / (per_us * MCAST_EFFICIENCY)


def _dram_us(nbytes: float, cores: int, target: Target) -> float:
    """DRAM time: the chip's achievable bandwidth, or what `cores` cores can pull, if less."""
    chip = target.dram_bw_gbs * 1e3 * DRAM_EFFICIENCY  # bytes per microsecond
    per_core = target.dram_bytes_per_cycle_per_core * target.clock_ghz * 1e3
    return nbytes / min(chip, cores * per_core)


def _cycles_us(cycles: float, target: Target) -> float:
    return cycles / (target.clock_ghz * 1e3)


def _cores_of(placement: Placement | None, tiles: int, target: Target) -> int:
    """Cores an op runs on: its sharding's cores, else ttnn spreads interleaved work over the grid."""
    if placement is not None and placement.sharded and placement.num_cores:
        return placement.num_cores
    return max(1, min(target.num_cores, tiles))


# --- conv2d ----------------------------------------------------------------------------------


def conv_flops(node: Node, input_shape: Sequence[int]) -> int:
    """Real multiply-add FLOPs of a conv2d (2 per MAC), no padding."""
    n, _, oh, ow = node.out.shape
    kh, kw = _pair(node.attrs["kernel_size"])
    cin = input_shape[1] // node.attrs["groups"]
    return 2 * n * oh * ow * node.attrs["out_channels"] * cin * kh * kw


def _conv_grid(node: Node, plan: OpPlan, target: Target) -> tuple[tuple[int, int], int]:
    """(grid, num_cores) the conv runs on: conv sharding's choice, else its output sharding, else
    what ttnn picks by itself (all cores; height sharding stops at one tile row per core)."""
    conv = plan.conv
    if conv is not None and conv.grid is not None and conv.num_cores:
        return conv.grid, conv.num_cores
    out = plan.output
    if out is not None and out.sharded and out.grid is not None and out.num_cores:
        return out.grid, out.num_cores
    if conv is not None and conv.shard_layout == "HEIGHT_SHARDED":
        n, _, oh, ow = node.out.shape
        return target.grid, min(target.num_cores, cdiv(n * oh * ow, TILE))
    return target.grid, target.num_cores


def _scaled(cost: OpCost, n: int) -> OpCost:
    """`n` programs like `cost`, one after the other."""
    return OpCost(
        compute_us=n * cost.compute_us,
        dram_us=n * cost.dram_us,
        noc_us=n * cost.noc_us,
        reshard_us=n * cost.reshard_us,
        dispatch_us=n * cost.dispatch_us,
        flops=n * cost.flops,
        dram_bytes=n * cost.dram_bytes,
        device_ops=n * cost.device_ops,
        cores=cost.cores,
    )


def _eltwise_dram_us(shape: Sequence[int], dtype: str, reads: int, target: Target) -> float:
    """One eltwise program over interleaved DRAM tensors: `reads` inputs read, one output written."""
    nbytes = tensor_bytes(shape, dtype)
    cores = _cores_of(None, cdiv(nbytes, TILE * TILE), target)
    n, c, h, w = shape
    compute = _cycles_us(n * c * h * w / ELTWISE_ELEMS_PER_CYCLE / cores, target)
    dram = _dram_us(nbytes * (reads + 1), cores, target)
    return max(compute, dram) + OVERLAP_LOSS * min(compute, dram) + DEVICE_OP_US + DRAM_OP_US


def _channel_sliced_cost(node: Node, plan: OpPlan, src: Operand, target: Target) -> OpCost:
    """tt_cnn's channel slicing (models/tt_cnn/tt/builder.py TtConv2d._apply_channel_slicing): n slices
    of the input's channels (ttnn.slice, in the input's memory), n convs over C/n channels, each output
    accumulated in DRAM (the first moved there, as the partial conv's DRAM output; then n - 1 adds), then
    a bias add. Our rendering (templates: conv2d_by_channels) has the bias in the first partial conv: one
    eltwise pass over the output fewer than costed here (the fitted measured states use tt_cnn's). A
    grouped (depthwise) conv's parts write their own output channels, concatenated in one DRAM pass."""
    conv = plan.conv
    assert conv is not None
    n = conv.channel_slices
    b, c, h, w = src.shape
    part = Operand((b, c // n, h, w), src.dtype, src.placement)
    out = node.out.shape
    a = node.attrs
    if a["groups"] == 1:
        part_node = node
        accumulate_us = (n - 1) * _eltwise_dram_us(out, plan.dtype, 2, target) + _eltwise_dram_us(
            out, plan.dtype, 1, target
        )
    else:  # a grouped conv's parts hold whole groups and write their own output channels: one concat
        p = shards.ConvShape.of(node, src.shape).channel_part(n)
        attrs = {**a, "in_channels": p.in_channels, "out_channels": p.out_channels, "groups": p.groups}
        part_node = dataclasses.replace(
            node, attrs=attrs, out=dataclasses.replace(node.out, shape=(out[0], out[1] // n, *out[2:]))
        )
        accumulate_us = _eltwise_dram_us(out, plan.dtype, 1, target)
    whole = dataclasses.replace(plan, conv=dataclasses.replace(conv, channel_slices=1))
    one = _conv_cost(part_node, whole, part, target)
    slice_us = n * reshard_cost(part.shape, src.dtype, src.placement, src.placement, target).total_us
    convs = _scaled(one, n)
    return dataclasses.replace(
        convs,
        reshard_us=convs.reshard_us + slice_us + accumulate_us,
        device_ops=convs.device_ops + n + (n if a["groups"] == 1 else 1),
    )


def _dram_matmul_cost(node: Node, plan: OpPlan, src: Operand, target: Target) -> OpCost:
    """A 1x1 stride-1 conv on a DRAM input with ttnn's automatic slicing: real ttnn 0.81.1 runs it as
    one matmul straight on the DRAM-interleaved tensors (benchmarks/measured/auto_slices.json: a single
    MatmulDeviceOperation) on every core, at its own calibrated rate (DRAM_MATMUL_EFFICIENCY)."""
    n, cin, h, w = src.shape
    cout = node.attrs["out_channels"]
    tiles = cdiv(n * h * w, TILE) * cdiv(cin, TILE) * cdiv(cout, TILE)
    cores = target.num_cores
    compute = _cycles_us(tiles * CYCLES_PER_TILE_MATMUL[plan.math_fidelity] / DRAM_MATMUL_EFFICIENCY / cores, target)
    w_bytes = shards.tensor_bytes(cin, cout, plan.weights_dtype or "bfloat16")
    dram = tensor_bytes(src.shape, src.dtype) + w_bytes + tensor_bytes(node.out.shape, plan.dtype)
    return OpCost(
        compute_us=compute,
        dram_us=_dram_us(dram, cores, target),
        noc_us=0.0,
        reshard_us=0.0,
        dispatch_us=DEVICE_OP_US + DRAM_OP_US,
        flops=conv_flops(node, src.shape),
        dram_bytes=int(dram),
        device_ops=1,
        cores=cores,
    )


def _conv_cost(node: Node, plan: OpPlan, src: Operand, target: Target) -> OpCost:
    conv = plan.conv
    if conv is None:
        raise ValueError(f"conv2d {node.name!r} has no conv config: run conv sharding before the cost model")
    if conv.channel_slices > 1:
        return _channel_sliced_cost(node, plan, src, target)
    pointwise = cb_model.conv_is_matmul(  # ttnn picks the sharding of an auto-sliced conv: any but WIDTH
        kernel_size=_pair(node.attrs["kernel_size"]),
        stride=_pair(node.attrs["stride"]),
        padding=_pair(node.attrs["padding"]),
        dilation=_pair(node.attrs["dilation"]),
        shard_layout="HEIGHT_SHARDED",
        groups=node.attrs["groups"],
    )
    if conv.auto_slicing and conv.slice_type == "L1_FULL" and src.placement.buffer == "DRAM" and pointwise:
        return _dram_matmul_cost(node, plan, src, target)
    layout = conv.shard_layout
    grid, cores = _conv_grid(node, plan, target)
    slices = max(conv.num_slices, 1) if conv.slice_type != "L1_FULL" else 1
    n, cin, ih, iw = src.shape
    kernel, stride = _pair(node.attrs["kernel_size"]), _pair(node.attrs["stride"])
    padding, dilation = _pair(node.attrs["padding"]), _pair(node.attrs["dilation"])
    geometry = dict(
        batch=n,
        input_hw=(ih, iw),
        in_channels=cin,
        out_channels=node.attrs["out_channels"],
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        shard_layout=layout,
        grid=grid,
        num_cores=cores,
        act_block_h=conv.act_block_h,
        act_block_w_div=conv.act_block_w_div,
        num_slices=conv.num_slices if slices > 1 else 0,
        device_grid=target.grid,
    )
    blocks = cb_model.conv_blocks(
        **geometry,
        matmul=cb_model.conv_is_matmul(
            kernel_size=kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            shard_layout=layout,
            groups=node.attrs["groups"],
        ),
    )
    # Per-core tile matmuls: output rows x output channels x reduction, all in padded tiles. Every
    # core reduces over all input channels: a width-sharded core gets every activation by multicast,
    # a block-sharded core its row's channel blocks one after the other (ttnn's block-sharded conv
    # sets act_matrix_width to the full C_in*kh*kw in conv_act_c_blocks outer blocks,
    # conv2d_op_sharded_program_factory.cpp); a height-sharded core holds all channels.
    k_tiles = blocks.weight_h_ntiles if layout != "HEIGHT_SHARDED" else kernel[0] * blocks.act_block_w_ntiles
    tile_matmuls = slices * blocks.out_h_ntiles * blocks.out_w_ntiles * k_tiles
    compute_us = _cycles_us(tile_matmuls * CYCLES_PER_TILE_MATMUL[plan.math_fidelity] / MATMUL_EFFICIENCY, target)

    cores_nhw, cores_c = cb_model.core_split(layout, grid, cores)
    in_bytes = tensor_bytes(src.shape, src.dtype)
    out_bytes = tensor_bytes(node.out.shape, plan.dtype)
    w_bytes = shards.tensor_bytes(
        cin // node.attrs["groups"] * kernel[0] * kernel[1],
        node.attrs["out_channels"],
        plan.weights_dtype or "bfloat16",
    )
    halo = (
        slices
        * cb_model.conv2d_l1(
            **geometry,
            groups=node.attrs["groups"],
            input_dtype=src.dtype,
            weights_dtype=plan.weights_dtype or "bfloat16",
            output_dtype=plan.dtype,
            enable_act_double_buffer=conv.enable_act_double_buffer,
            enable_weights_double_buffer=conv.enable_weights_double_buffer,
            fp32_dest_acc=plan.fp32_dest_acc,
            output_layout=plan.layout,
            slice_type=conv.slice_type,
        ).halo
    )

    # Prepared weights live in DRAM and are re-read for every slice.
    dram = float(w_bytes * slices)
    unicast = float(halo)
    device_ops = slices * (1 + (halo > 0))
    dram_programs = 0
    in_buf = src.placement.buffer
    if in_buf == "DRAM":
        dram += in_bytes
        device_ops += slices  # slice read (or the move to the sharded input of an L1_FULL conv)
        dram_programs += slices
    elif not src.placement.sharded:
        unicast += in_bytes / cores  # interleaved L1 pages are gathered into shards
        device_ops += 1
    # Weights are multicast: every height-sharded core gets all of them, a block-sharded core
    # its column's share, a width-sharded core its own share.
    share = {"HEIGHT_SHARDED": 1, "BLOCK_SHARDED": cores_c, "WIDTH_SHARDED": cores}[layout]
    multicast = slices * w_bytes / share
    # Activations are multicast along block-sharded rows / to every width-sharded core.
    if layout == "BLOCK_SHARDED":
        multicast += in_bytes / cores_nhw
    elif layout == "WIDTH_SHARDED":
        multicast += in_bytes
    out_buf = plan.output.buffer if plan.output is not None else "DRAM"
    if out_buf == "DRAM":
        dram += out_bytes
        writes = slices if slices > 1 else 1  # slice writes / the move out of the conv's shards
        device_ops += writes
        dram_programs += writes
    elif plan.output is not None and not plan.output.sharded:
        unicast += out_bytes / cores
        device_ops += 1
    return OpCost(
        compute_us=compute_us,
        dram_us=_dram_us(dram, cores, target),
        noc_us=_noc_us(unicast, multicast, target),
        reshard_us=0.0,
        dispatch_us=device_ops * DEVICE_OP_US + dram_programs * DRAM_OP_US,
        flops=conv_flops(node, src.shape),
        dram_bytes=int(dram),
        device_ops=device_ops,
        cores=cores,
    )


# --- everything else -------------------------------------------------------------------------


def _work(node: Node, inputs: Sequence[Operand]) -> Work:
    """What the op's descriptor (converter/ops) says its engines process."""
    of = op_kind(node).work
    if of is None:
        raise ValueError(f"no cost rule for op {node.op!r} (node {node.name!r})")
    return of(node, [o.shape for o in inputs])


def _vector_cycles(work: Work, plan: OpPlan) -> tuple[float, int]:
    """(total core-cycles of vector/reduce work, real FLOPs) of a non-conv op."""
    phases = FIDELITY_PHASES[plan.math_fidelity]
    cycles = (work.eltwise + work.eltwise_mul * phases) / ELTWISE_ELEMS_PER_CYCLE
    if work.sfpu:
        cycles += work.sfpu / SFPU_ELEMS_PER_CYCLE
    if work.reduce or work.reduce_mul:
        cycles += (work.reduce + work.reduce_mul * phases) / REDUCE_ELEMS_PER_CYCLE
    return cycles, work.flops


def _generic_cost(node: Node, plan: OpPlan, inputs: Sequence[Operand], target: Target) -> OpCost:
    out_bytes = tensor_bytes(node.out.shape, plan.dtype)
    cores = _cores_of(plan.output, cdiv(out_bytes, TILE * TILE), target)
    work = _work(node, inputs)
    cycles, flops = _vector_cycles(work, plan)
    dram = 0.0
    noc = 0.0
    for operand in inputs:
        nbytes = tensor_bytes(operand.shape, operand.dtype)
        if operand.placement.buffer == "DRAM":
            dram += nbytes
        elif not operand.placement.sharded:
            noc += nbytes / cores
    out = plan.output
    if out is None or out.buffer == "DRAM":
        dram += out_bytes
    elif not out.sharded:
        noc += out_bytes / cores
    device_ops = 1
    if work.copies_output:
        noc += out_bytes / cores  # data-movement kernels copy every output stick through the NoC
    if work.halo and inputs and inputs[0].placement.sharded:
        device_ops += 1  # halo
        n, c, ih, iw = inputs[0].shape
        grid = out.grid if out is not None and out.grid is not None else target.grid
        noc += cb_model.halo_bytes(
            batch=n,
            input_hw=(ih, iw),
            channels=c,
            kernel_size=_pair(node.attrs["kernel_size"]),
            stride=_pair(node.attrs["stride"]),
            padding=_pair(node.attrs["padding"]),
            dilation=_pair(node.attrs.get("dilation", 1)),
            shard_layout=inputs[0].placement.layout,
            grid=grid,
            num_cores=cores,
            dtype=inputs[0].dtype,
            num_slices=0,
        )
    return OpCost(
        compute_us=_cycles_us(cycles / cores, target),
        dram_us=_dram_us(dram, cores, target),
        noc_us=_noc_us(noc, 0.0, target),
        reshard_us=0.0,
        dispatch_us=device_ops * DEVICE_OP_US + (dram > 0) * DRAM_OP_US,
        flops=int(flops),
        dram_bytes=int(dram),
        device_ops=device_ops,
        cores=cores,
    )


def _resample_cost(node: Node, plan: OpPlan, src: Operand, target: Target) -> OpCost:
    """templates' resample(): two permutes, a tilize and an untilize (each reads and writes its tensor in
    DRAM) and two matmuls over the [N, C, ., .] batch. Each matmul core makes one output tile row at a
    time (per_core_M=1), reading its in0 row of K tiles and all K x N tiles of in1 for it. With multicast
    program configs (`program` 'multicast', Tenstorrent's since PR #36918) a core block's operands are read
    once and multicast along its grid row and column: each operand crosses DRAM once."""
    n, c, h, w = src.shape
    oh, ow = node.out.shape[2:]
    tb = cb_model.TILE_BYTES[plan.dtype]
    batch = n * c
    tiles = 0
    dram = 0.0
    for m, k, nn in ((h, w, ow), (oh, h, ow)):  # over W: [H, W] @ cols^T; over H: rows @ [H, W']
        mt, kt, nt = cdiv(m, TILE), cdiv(k, TILE), cdiv(nn, TILE)
        tiles += batch * mt * kt * nt
        reads = mt * kt + kt * nt if node.attrs["program"] == "multicast" else mt * (kt + kt * nt)
        dram += batch * (reads + mt * nt) * tb
    moved = tensor_bytes(src.shape, "bfloat16") + tensor_bytes(node.out.shape, plan.dtype)
    dram += 4 * moved  # permute and (un)tilize, in and out, on each side
    cores = target.num_cores
    cycles = tiles * CYCLES_PER_TILE_MATMUL[plan.math_fidelity] / MATMUL_EFFICIENCY
    return OpCost(
        compute_us=_cycles_us(cycles / cores, target),
        dram_us=_dram_us(dram, cores, target),
        noc_us=0.0,
        reshard_us=0.0,
        dispatch_us=6 * (DEVICE_OP_US + DRAM_OP_US),
        flops=2 * batch * (h * w * ow + oh * h * ow),
        dram_bytes=int(dram),
        device_ops=6,
    )


def reshard_cost(shape: Sequence[int], dtype: str, src: Placement, dst: Placement, target: Target) -> OpCost:
    """One ttnn.to_memory_config move: read everything from `src`, write everything to `dst`."""
    nbytes = tensor_bytes(shape, dtype)
    tiles = cdiv(nbytes, TILE * TILE)
    cores = min(_cores_of(src, tiles, target), _cores_of(dst, tiles, target))
    dram = nbytes * ((src.buffer == "DRAM") + (dst.buffer == "DRAM"))
    noc = 0.0 if src.buffer == "DRAM" and dst.buffer == "DRAM" else nbytes / cores
    return OpCost(
        compute_us=0.0,
        dram_us=_dram_us(dram, cores, target),
        noc_us=_noc_us(noc, 0.0, target),
        reshard_us=0.0,
        dispatch_us=DEVICE_OP_US + (dram > 0) * DRAM_OP_US,
        flops=0,
        dram_bytes=int(dram),
        device_ops=1,
        cores=cores,
    )


def op_cost(
    node: Node, plan: OpPlan, target: Target, inputs: Sequence[Operand], spilled: Sequence[Operand] = ()
) -> OpCost:
    """Modeled device time of `node` run as `plan` on `target`.

    `inputs` are the node's operands in argument order as they are before the plan's moves;
    `spilled` the tensors named by `plan.spill_before`, in that order, as they are before their
    spill. Both kinds of move (spills, then `reshard_inputs`) are costed here, in `reshard_us`,
    and the op then reads the moved tensors. Pure: the planner can call it on candidate plans.
    """
    if is_host(node):
        return ZERO_COST
    moves = [
        reshard_cost(o.shape, o.dtype, o.placement, dst, target)
        for o, (_, dst) in zip(spilled, plan.spill_before, strict=True)
    ]
    moved = dict(plan.reshard_inputs)
    actual: list[Operand] = []
    for name, operand in zip(node.inputs, inputs, strict=True):
        if name in moved:
            moves.append(reshard_cost(operand.shape, operand.dtype, operand.placement, moved[name], target))
            operand = dataclasses.replace(operand, placement=moved[name])
        actual.append(operand)
    priced_as = op_kind(node).cost
    if priced_as is Cost.CONV:
        own = _conv_cost(node, plan, actual[0], target)
    elif priced_as is Cost.MATMULS:
        own = _resample_cost(node, plan, actual[0], target)
    else:
        own = _generic_cost(node, plan, actual, target)
    if plan.dram_copies:  # copies of the output to DRAM (the hand-written model's clones)
        out = plan.output or HOST_INPUT
        copy = reshard_cost(node.out.shape, plan.dtype, out, HOST_INPUT, target)
        moves += [copy] * plan.dram_copies
    return dataclasses.replace(
        own,
        reshard_us=own.reshard_us + sum(m.total_us for m in moves),
        dram_bytes=own.dram_bytes + sum(m.dram_bytes for m in moves),
        device_ops=own.device_ops + len(moves),
    )


# --- whole plans -----------------------------------------------------------------------------

HOST_INPUT = DRAM_INTERLEAVED  # where ttnn.from_torch(device=...) puts the image


def _dtype(node: Node) -> str:
    return plan_of(node).dtype if node.plan is not None else "bfloat16"


def walk(graph: Graph, target: Target) -> list[tuple[Node, OpCost, list[Operand]]]:
    """Cost every device op in program order, tracking where each tensor lives as moves happen
    (a spill or reshard replaces the tensor for every later reader); with each op, its operands
    as it reads them (after its moves)."""
    where: dict[str, Operand] = {}
    out = []
    for node in graph:
        plan = node.plan if isinstance(node.plan, OpPlan) else None
        if not is_host(node):
            if plan is None:
                raise ValueError(f"node {node.name!r} has no plan: run the planner before the cost model")
            inputs = [where[i] for i in node.inputs]
            spilled = [where[name] for name, _ in plan.spill_before]
            cost = op_cost(node, plan, target, inputs, spilled)
            for name, dst in plan.spill_before + plan.reshard_inputs:
                where[name] = dataclasses.replace(where[name], placement=dst)
            out.append((node, cost, [where[i] for i in node.inputs]))
        placement = plan.output if plan is not None and plan.output is not None else HOST_INPUT
        where[node.name] = Operand(node.out.shape, _dtype(node), placement)
    return out


@dataclass(frozen=True)
class OpRow:
    name: str
    op: str
    cost: OpCost


@dataclass(frozen=True)
class PlanCost:
    target: str
    rows: tuple[OpRow, ...]
    activation_bytes: int  # device bytes of every activation the graph produces
    l1_activation_bytes: int  # of which placed in L1
    l1_peak_per_core: int  # max over ops of the plan's live-L1 estimate

    @property
    def total_ms(self) -> float:
        """The sum of device kernel durations of one cold untraced forward (the device perf test's figure)."""
        return sum(r.cost.total_us for r in self.rows) / 1e3

    @property
    def traced_ms(self) -> float:
        """End-to-end device latency of one forward replayed from a trace: kernels plus op-to-op gaps
        (no host time: the input is already on the device, the output is not read back)."""
        return self.total_ms + self.device_ops * TRACE_GAP_US / 1e3

    @property
    def dram_bytes(self) -> int:
        return sum(r.cost.dram_bytes for r in self.rows)

    @property
    def l1_share(self) -> float:
        return self.l1_activation_bytes / self.activation_bytes if self.activation_bytes else 0.0

    @property
    def device_ops(self) -> int:
        return sum(r.cost.device_ops for r in self.rows)

    def summary(self) -> dict[str, float | int | str]:
        """The headline numbers, JSON-ready."""
        return {
            "target": self.target,
            "latency_ms": round(self.total_ms, 3),
            "traced_ms": round(self.traced_ms, 3),
            "dram_bytes": self.dram_bytes,
            "l1_activation_share": round(self.l1_share, 4),
            "l1_peak_per_core": self.l1_peak_per_core,
            "device_ops": self.device_ops,
            "compute_ms": round(sum(r.cost.compute_us for r in self.rows) / 1e3, 3),
            "data_ms": round(sum(r.cost.data_us for r in self.rows) / 1e3, 3),
            "reshard_ms": round(sum(r.cost.reshard_us for r in self.rows) / 1e3, 3),
            "dispatch_ms": round(sum(r.cost.dispatch_us for r in self.rows) / 1e3, 3),
        }


@dataclass(frozen=True)
class Floor:
    """What no plan of this graph can beat on this target (the precision it uses fixed): every conv's
    FLOPs at the matrix engine's peak on all cores at its fidelity, or the bytes that must cross DRAM
    once (weights, the input image, the outputs) at the chip's nominal bandwidth, whichever is longer."""

    compute_ms: float
    dram_ms: float

    @property
    def ms(self) -> float:
        return max(self.compute_ms, self.dram_ms)


def physical_floor(graph: Graph, target: Target) -> Floor:
    peak_per_cycle = 2 * TILE**3 / CYCLES_PER_TILE_MATMUL["LoFi"]  # FLOPs per core per cycle at LoFi
    shapes = {n.name: n.out.shape for n in graph}
    compute_s = 0.0
    nbytes = 0
    for n in graph:
        plan = n.plan if isinstance(n.plan, OpPlan) else None
        if is_host(n):
            nbytes += tensor_bytes(n.out.shape, "bfloat16")
        elif plan is not None and plan.conv is not None:
            rate = peak_per_cycle / FIDELITY_PHASES[plan.math_fidelity] * target.num_cores * target.clock_ghz * 1e9
            compute_s += conv_flops(n, shapes[n.inputs[0]]) / rate
            kh, kw = _pair(n.attrs["kernel_size"])
            cin = shapes[n.inputs[0]][1] // n.attrs["groups"]
            nbytes += shards.tensor_bytes(n.attrs["out_channels"], cin * kh * kw, plan.weights_dtype or plan.dtype)
    return Floor(compute_s * 1e3, nbytes / (target.dram_bw_gbs * 1e9) * 1e3)


def evaluate(graph: Graph, target: Target) -> PlanCost:
    """Cost every op of a planned graph (every non-host node must carry an OpPlan)."""
    rows = []
    act = l1_act = peak = 0
    for node, cost, _ in walk(graph, target):
        rows.append(OpRow(node.name, node.op, cost))
        nbytes = tensor_bytes(node.out.shape, plan_of(node).dtype)
        act += nbytes
        output = plan_of(node).output
        if output is not None and output.buffer == "L1":
            l1_act += nbytes
        peak = max(peak, plan_of(node).l1_peak_per_core)
    return PlanCost(target.name, tuple(rows), act, l1_act, peak)
