"""The typed record of every device decision the passes take for one op (`Node.plan`).

One record per node, like torch.fx's `TensorMetadata` in shape_prop: passes fill it in stages with
`dataclasses.replace` (dtype policy -> conv sharding -> memory planning -> cost model) and the code
generator and plan report read nothing else. Strings are ttnn enum member names, so the generator
can emit them verbatim (`ttnn.TensorMemoryLayout.HEIGHT_SHARDED`, `ttnn.MathFidelity.HiFi2`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from converter.ir import Node

BUFFERS = ("L1", "DRAM")
MEMORY_LAYOUTS = ("INTERLEAVED", "HEIGHT_SHARDED", "BLOCK_SHARDED", "WIDTH_SHARDED")
SLICE_TYPES = ("L1_FULL", "DRAM_SLICE_HEIGHT", "DRAM_SLICE_WIDTH")
DTYPES = ("float32", "bfloat16", "bfloat8_b")
MATH_FIDELITIES = ("LoFi", "HiFi2", "HiFi3", "HiFi4")
TILE_LAYOUT, ROW_MAJOR = "TILE", "ROW_MAJOR"  # ttnn tensor layouts (TILE the layout, not the 32-wide tile)
TENSOR_LAYOUTS = (TILE_LAYOUT, ROW_MAJOR)


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
    """What conv sharding chose for one conv2d, and why."""

    shard_layout: str  # HEIGHT_SHARDED | BLOCK_SHARDED | WIDTH_SHARDED (always explicit)
    slice_type: str  # SLICE_TYPES
    num_slices: int  # 0 with L1_FULL
    act_block_h: int  # act_block_h_override, 0 = ttnn's maximum; else a multiple of 32
    act_block_w_div: int  # > 1 only for width sharding
    enable_act_double_buffer: bool
    enable_weights_double_buffer: bool
    why: str  # its modeled time, the runner-up and why L1_FULL was not used, for the plan report
    # Added by conv sharding (additive): the cores the conv runs on, as in Placement
    # (Conv2dConfig.core_grid + override_sharding_config when emitted), and its own working set.
    grid: tuple[int, int] | None = None
    num_cores: int = 0
    l1_bytes_per_core: int = 0  # input (slice) shard + halo + output (slice) shard + CBs, per core
    # Set from overrides only (costed, not rendered: passes/overrides.py): partial convs over this many
    # input-channel groups summed by adds; ttnn picks the slicing itself (slice_config None, DRAM input).
    channel_slices: int = 1
    auto_slicing: bool = False


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
    layout: str = TILE_LAYOUT
    layout_inputs: tuple[tuple[str, str], ...] = ()
    # Added by memory planning (additive): live L1 tensors moved to the top of L1 with
    # `ttnn.reallocate` (free, then allocate again) before any other move, to close holes.
    reallocate_before: tuple[str, ...] = ()
    l1_peak_per_core: int = 0  # bytes: live L1 tensors + this op's circular buffers, per core
    dram_copies: int = 0  # extra copies of the output to DRAM (overrides only; costed, not rendered)
    notes: tuple[str, ...] = ()  # why each decision was taken, for the plan report


class MissingPlanError(AssertionError):
    """A pass read a decision that an earlier pass should have taken (a pipeline-order bug)."""


def plan_of(node: Node) -> OpPlan:
    """`node.plan`, which the dtype policy sets for every node (the IR does not know the plan's type)."""
    if not isinstance(node.plan, OpPlan):
        raise MissingPlanError(f"{node.name} has no plan yet: run the dtype policy first")
    return node.plan


def conv_of(node: Node) -> ConvConfig:
    """The conv config conv sharding set on a conv2d node."""
    conv = plan_of(node).conv
    if conv is None:
        raise MissingPlanError(f"{node.name} has no conv config yet: run conv sharding first")
    return conv


def output_of(node: Node) -> Placement:
    """Where memory planning put the node's output."""
    output = plan_of(node).output
    if output is None:
        raise MissingPlanError(f"{node.name} has no output placement yet: run memory planning first")
    return output


def stored_dtype(name: str, nodes: dict[str, Node]) -> str:
    """The dtype tensor `name` really has on the device: relu and concat take no dtype and keep their
    first input's; an upsample reads ROW_MAJOR, which has no bfloat8_b, so it yields bfloat16 from it
    (as ttnn does)."""
    n = nodes[name]
    if n.op in ("relu", "concat"):
        return stored_dtype(n.inputs[0], nodes)
    if n.op == "upsample":
        d = stored_dtype(n.inputs[0], nodes)
        return "bfloat16" if d == "bfloat8_b" else d
    return plan_of(n).dtype
