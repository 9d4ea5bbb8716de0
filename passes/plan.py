"""The typed record of every device decision the passes take for one op (`Node.plan`).

One record per node, like torch.fx's `TensorMetadata` in shape_prop: passes fill it in stages with
`dataclasses.replace` (dtype policy -> conv sharding -> memory planning -> cost model) and the code
generator and plan report read nothing else. Strings are ttnn enum member names, so the generator
can emit them verbatim (`ttnn.TensorMemoryLayout.HEIGHT_SHARDED`, `ttnn.MathFidelity.HiFi2`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from converter.ops import Choice, Dtype, Layout, op_kind

if TYPE_CHECKING:
    from converter.ir import Node


class Buffer(Choice):
    L1 = "L1"
    DRAM = "DRAM"


class MemoryLayout(Choice):
    INTERLEAVED = "INTERLEAVED"
    HEIGHT_SHARDED = "HEIGHT_SHARDED"
    BLOCK_SHARDED = "BLOCK_SHARDED"
    WIDTH_SHARDED = "WIDTH_SHARDED"


class SliceType(Choice):
    L1_FULL = "L1_FULL"
    DRAM_SLICE_HEIGHT = "DRAM_SLICE_HEIGHT"
    DRAM_SLICE_WIDTH = "DRAM_SLICE_WIDTH"


class DeviceDtype(Choice):
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    BFLOAT8_B = "bfloat8_b"


class MathFidelity(Choice):
    LoFi = "LoFi"
    HiFi2 = "HiFi2"
    HiFi3 = "HiFi3"
    HiFi4 = "HiFi4"


BUFFERS = tuple(b.value for b in Buffer)
SLICE_TYPES = tuple(t.value for t in SliceType)
DTYPES = tuple(d.value for d in DeviceDtype)  # widest first
MATH_FIDELITIES = tuple(f.value for f in MathFidelity)
TILE_LAYOUT, ROW_MAJOR = Layout.TILE, Layout.ROW_MAJOR


# the enum of each typed field, by its annotation
_ENUM_FIELDS: dict[str, type[Choice]] = {
    "Buffer": Buffer,
    "MemoryLayout": MemoryLayout,
    "SliceType": SliceType,
    "DeviceDtype": DeviceDtype,
    "DeviceDtype | None": DeviceDtype,
    "MathFidelity": MathFidelity,
    "Layout": Layout,
}


def _coerce(record: Any) -> None:
    """Turn each enum-typed field given as its name into the member, rejecting names it does not have."""
    for f in fields(record):
        kind = _ENUM_FIELDS.get(f.type if isinstance(f.type, str) else "")
        value = getattr(record, f.name)
        if kind is not None and value is not None and not isinstance(value, kind):
            try:
                object.__setattr__(record, f.name, kind(value))
            except ValueError:
                allowed = ", ".join(m.value for m in kind)
                raise ValueError(f"{type(record).__name__}.{f.name} = {value!r}: not one of {allowed}") from None


@dataclass(frozen=True)
class Placement:
    """Where a tensor lives on the device, as a ttnn MemoryConfig would say it.

    Activations are always NHWC flattened to [1, 1, N*H*W, C] on the device; a shard is
    `shard_shape` = (rows, channels) of that 2-D view, on `grid` = (x, y) cores
    (row-major over the target's compute grid, `num_cores` of them for height sharding).
    """

    buffer: Buffer
    layout: MemoryLayout
    grid: tuple[int, int] | None = None  # (x, y) of the core grid used when sharded
    num_cores: int | None = None  # cores actually holding shards (height sharding may use < x*y)
    shard_shape: tuple[int, int] | None = None  # (rows, cols) per core when sharded

    def __post_init__(self) -> None:
        _coerce(self)

    @property
    def sharded(self) -> bool:
        return self.layout != MemoryLayout.INTERLEAVED


DRAM_INTERLEAVED = Placement(Buffer.DRAM, MemoryLayout.INTERLEAVED)  # the model input, spills, heads
L1_INTERLEAVED = Placement(Buffer.L1, MemoryLayout.INTERLEAVED)


@dataclass(frozen=True)
class ConvConfig:
    """What conv sharding chose for one conv2d, and why."""

    shard_layout: MemoryLayout  # HEIGHT_SHARDED | BLOCK_SHARDED | WIDTH_SHARDED (always explicit)
    slice_type: SliceType
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

    def __post_init__(self) -> None:
        _coerce(self)
        if self.shard_layout == MemoryLayout.INTERLEAVED:
            raise ValueError("ConvConfig.shard_layout: a conv names its sharding (not INTERLEAVED)")


@dataclass(frozen=True)
class OpPlan:
    dtype: DeviceDtype  # output activation dtype
    weights_dtype: DeviceDtype | None  # conv weights dtype, None for ops without weights
    math_fidelity: MathFidelity
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
    layout: Layout = Layout.TILE
    layout_inputs: tuple[tuple[str, Layout], ...] = ()
    # Added by memory planning (additive): live L1 tensors moved to the top of L1 with
    # `ttnn.reallocate` (free, then allocate again) before any other move, to close holes.
    reallocate_before: tuple[str, ...] = ()
    l1_peak_per_core: int = 0  # bytes: live L1 tensors + this op's circular buffers, per core
    notes: tuple[str, ...] = ()  # why each decision was taken, for the plan report

    def __post_init__(self) -> None:
        _coerce(self)


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


def read_dtype(dtype: str, layout: str) -> str:
    """The dtype a tensor has when read in `layout`: ROW_MAJOR has no bfloat8_b, so it reads bfloat16."""
    return DeviceDtype.BFLOAT16 if layout == Layout.ROW_MAJOR and dtype == DeviceDtype.BFLOAT8_B else dtype


def output_dtype(n: Node, input_dtype: str) -> str:
    """The dtype node `n` writes when its first input has `input_dtype` (its descriptor's dtype rule):
    ops without a dtype argument keep their input's; one reading ROW_MAJOR, which has no bfloat8_b,
    yields bfloat16 from it (as ttnn does)."""
    rule = op_kind(n).dtype
    if rule is Dtype.OWN:
        return plan_of(n).dtype
    return read_dtype(input_dtype, Layout.ROW_MAJOR) if rule is Dtype.INPUT_ROW_MAJOR else input_dtype


def stored_dtype(name: str, nodes: dict[str, Node]) -> str:
    """The dtype tensor `name` really has on the device (`output_dtype` back to an op with its own)."""
    n = nodes[name]
    if op_kind(n).dtype is Dtype.OWN:
        return plan_of(n).dtype
    return output_dtype(n, stored_dtype(n.inputs[0], nodes))
