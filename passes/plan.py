"""The typed record of every device decision the passes take for one op (`Node.plan`).

One record per node, like torch.fx's `TensorMetadata` in shape_prop: passes fill it in stages with
`dataclasses.replace` (dtype policy -> conv sharding -> memory planning -> cost model) and the code
generator and plan report read nothing else. Strings are ttnn enum member names, so the generator
can emit them verbatim (`ttnn.TensorMemoryLayout.HEIGHT_SHARDED`, `ttnn.MathFidelity.HiFi2`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

BUFFERS = ("L1", "DRAM")
MEMORY_LAYOUTS = ("INTERLEAVED", "HEIGHT_SHARDED", "BLOCK_SHARDED", "WIDTH_SHARDED")
SLICE_TYPES = ("L1_FULL", "DRAM_SLICE_HEIGHT", "DRAM_SLICE_WIDTH")
DTYPES = ("float32", "bfloat16", "bfloat8_b")
MATH_FIDELITIES = ("LoFi", "HiFi2", "HiFi3", "HiFi4")


@dataclass(frozen=True)
class Placement:
    """Where a tensor lives on the device, as a ttnn MemoryConfig would say it.

    Activations are always NHWC flattened to [1, 1, N*H*W, C] on the device; a shard is
    `shard_shape` = (rows, channels) of that 2-D view, on `grid` = (x, y) cores
    (row-major over the target's compute grid, `num_cores` of them for height sharding).
    """

    buffer: str  # BUFFERS
    layout: str  # MEMORY_LAYOUTS
    grid: tuple[int, int] | None = None  # (x, y) of the core grid used when sharded
    num_cores: int | None = None  # cores actually holding shards (height sharding may use < x*y)
    shard_shape: tuple[int, int] | None = None  # (rows, cols) per core when sharded

    @property
    def sharded(self) -> bool:
        return self.layout != "INTERLEAVED"


@dataclass(frozen=True)
class ConvConfig:
    """What conv sharding chose for one conv2d (a rung of the fallback ladder)."""

    shard_layout: str  # HEIGHT_SHARDED | BLOCK_SHARDED | WIDTH_SHARDED (always explicit)
    slice_type: str  # SLICE_TYPES
    num_slices: int  # 0 with L1_FULL
    act_block_h: int  # act_block_h_override, 0 = ttnn's maximum; else a multiple of 32
    act_block_w_div: int  # > 1 only for width sharding
    enable_act_double_buffer: bool
    enable_weights_double_buffer: bool
    cb_bytes_per_core: int  # estimated circular-buffer L1 of this conv, per core
    rung: str  # which rung of the ladder was used and why, for the plan report
    # Added by conv sharding (additive): the cores the conv runs on, as in Placement
    # (Conv2dConfig.core_grid + override_sharding_config when emitted), and its own working set.
    grid: tuple[int, int] | None = None
    num_cores: int = 0
    l1_bytes_per_core: int = 0  # input (slice) shard + halo + output (slice) shard + CBs, per core


@dataclass(frozen=True)
class OpPlan:
    dtype: str  # output activation dtype (DTYPES)
    weights_dtype: str | None  # conv weights dtype (DTYPES), None for ops without weights
    math_fidelity: str  # MATH_FIDELITIES
    fp32_dest_acc: bool
    # conv2d only, set by the dtype policy (runtime/weights.py applies them to the host weights): the
    # matrix engine truncates its operands' low mantissa bits; these undo the bias that leaves
    weights_scale: float = 1.0  # weights x this: the expected loss of the truncated activations
    weights_round_srca: bool = False  # weights rounded to nearest at what LoFi's SrcA multiplier reads
    conv: ConvConfig | None = None  # conv2d only, set by conv sharding
    output: Placement | None = None  # set by memory planning
    # (input node name, placement) moves inserted before this op by memory planning
    reshard_inputs: tuple[tuple[str, Placement], ...] = ()
    deallocate_after: tuple[str, ...] = ()  # tensors whose last use is this op
    # Added by memory planning (additive): spills (moves to DRAM) of live tensors that are not
    # inputs of this op, done before `reshard_inputs`. Every move replaces the tensor.
    spill_before: tuple[tuple[str, Placement], ...] = ()
    # Set by memory planning: (slice type, count) when a max/avg pool runs with `dram_slice_config`, or
    # ("ROW_BANDS", count) when a bilinear upsample runs in row bands (input and output in DRAM).
    slices: tuple[str, int] | None = None
    # Added by layout planning (additive): the output's ttnn layout (TILE | ROW_MAJOR), and the inputs
    # this op reads through a `ttnn.to_layout` temporary (input name, layout), freed after the op.
    layout: str = "TILE"
    layout_inputs: tuple[tuple[str, str], ...] = ()
    # Added by memory planning (additive): live L1 tensors moved to the top of L1 with
    # `ttnn.reallocate` (free, then allocate again) before any other move, to close holes.
    reallocate_before: tuple[str, ...] = ()
    l1_peak_per_core: int = 0  # bytes: live L1 tensors + this op's circular buffers, per core
    dram_bytes: int = 0  # bytes this op reads from and writes to DRAM
    est_time_us: float = 0.0  # cost model estimate
    notes: tuple[str, ...] = ()  # why each decision was taken, for the plan report
