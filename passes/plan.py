"""The typed record of every device decision the passes take for one op (`Node.plan`).

One record per node, like torch.fx's `TensorMetadata` in shape_prop: passes fill it in stages with
`dataclasses.replace` (dtype policy -> conv sharding -> layout planning -> memory planning), each
writing only the fields it owns, and the code generator and plan report read nothing else. Its
choices are str enums whose values are ttnn's member names, so the generator emits them verbatim
(`ttnn.TensorMemoryLayout.HEIGHT_SHARDED`, `ttnn.MathFidelity.HiFi2`, ...); a record made with any
other value is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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
    # the cores the conv runs on, as in Placement (Conv2dConfig.core_grid + override_sharding_config
    # when emitted; None when ttnn picks them), and its own working set
    grid: tuple[int, int] | None = None
    num_cores: int = 0
    l1_bytes_per_core: int = 0  # input (slice) shard + halo + output (slice) shard + CBs, per core
    # partial convs over this many input-channel groups of the DRAM input, summed in DRAM (a grouped
    # conv's: concatenated); conv sharding's choice when the whole conv fits nowhere, or an override's
    channel_slices: int = 1
    # set from overrides only (costed, not rendered: passes/overrides.py): ttnn picks the slicing itself
    # (slice_config None, DRAM input)
    auto_slicing: bool = False

    def __post_init__(self) -> None:
        _coerce(self)
        if self.shard_layout == MemoryLayout.INTERLEAVED:
            raise ValueError("ConvConfig.shard_layout: a conv names its sharding (not INTERLEAVED)")


def _by(*passes: str, **default: Any) -> Any:
    """A plan field written by the named passes only (passes/pipeline.py checks it after every pass)."""
    return field(metadata={"owners": passes}, **default)


@dataclass(frozen=True)
class OpPlan:
    """Each field is owned by the passes that write it (`owners`); the pipeline rejects a pass that
    changes a field it does not own. Fields are grouped by owner, in pipeline order."""

    # the dtype policy: precision (a concat of mixed dtypes widens its bfloat8_b inputs to bfloat16;
    # merge_siblings re-applies that rule after a merge)
    dtype: DeviceDtype = _by("dtype_policy", "one_dtype_per_concat", "merge_siblings")  # output activations
    weights_dtype: DeviceDtype | None = _by("dtype_policy")  # conv weights, None for ops without weights
    math_fidelity: MathFidelity = _by("dtype_policy")
    fp32_dest_acc: bool = _by("dtype_policy")
    # conv2d only (runtime/weights.py applies them to the host weights): the matrix engine truncates
    # its operands' low mantissa bits; these undo the bias that leaves
    weights_scale: float = _by("unbias_truncation", default=1.0)  # the expected loss of the truncated input
    weights_round_srca: bool = _by("unbias_truncation", default=False)  # rounded to what LoFi's SrcA reads
    # conv2d only; memory planning falls back to another legal config when none of the conv's fits
    conv: ConvConfig | None = _by("conv_sharding", "memory_plan", default=None)
    # the output's ttnn layout, and the inputs this op reads through a `ttnn.to_layout` temporary
    # (input name, layout), freed after the op
    layout: Layout = _by("layout_plan", default=Layout.TILE)
    layout_inputs: tuple[tuple[str, Layout], ...] = _by("layout_plan", default=())
    # memory planning: where the output lives, and the moves around the op. Before it, in this order:
    # live L1 tensors moved to the top of L1 with `ttnn.reallocate` to close holes; spills (moves to
    # DRAM) of live tensors it does not read; moves of its inputs (input name, placement). Every move
    # replaces the tensor. After it: tensors whose last use it is are freed.
    output: Placement | None = _by("memory_plan", default=None)
    reallocate_before: tuple[str, ...] = _by("memory_plan", default=())
    spill_before: tuple[tuple[str, Placement], ...] = _by("memory_plan", default=())
    reshard_inputs: tuple[tuple[str, Placement], ...] = _by("memory_plan", default=())
    deallocate_after: tuple[str, ...] = _by("memory_plan", default=())
    # (slice type, count) when a max/avg pool runs with `dram_slice_config`, or ("ROW_BANDS", count)
    # when a bilinear upsample runs in row bands (input and output in DRAM)
    slices: tuple[str, int] | None = _by("memory_plan", default=None)
    l1_peak_per_core: int = _by("memory_plan", default=0)  # bytes: live L1 tensors + the op's CBs, per core
    # extra copies of the output to DRAM (the hand-written model's clones; from overrides only, applied
    # with the other pins by the dtype policy; costed, not rendered)
    dram_copies: int = _by("dtype_policy", default=0)
    # why each decision was taken, for the plan report: every pass may append, none rewrites
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _coerce(self)


def owners(name: str) -> tuple[str, ...]:
    """The passes that may write OpPlan field `name`."""
    return _OWNERS[name]


def foreign_changes(pass_name: str, before: OpPlan, after: OpPlan) -> list[str]:
    """The fields `pass_name` changed between two plans of one node without owning them (notes: any
    pass may append to them, none may rewrite them)."""
    bad = [
        f.name
        for f in fields(OpPlan)
        if f.name != "notes" and getattr(before, f.name) != getattr(after, f.name) and pass_name not in owners(f.name)
    ]
    if after.notes[: len(before.notes)] != before.notes:
        bad.append("notes")
    return bad


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


_OWNERS = {f.name: f.metadata.get("owners", ()) for f in fields(OpPlan)}
