"""What each IR op kind is, in one place: its descriptor (`OpKind`), registered by name.

A descriptor holds the op's IR attributes and fp32 reference semantics, and the traits every later
stage reads instead of testing the op's name (tt-mlir keeps one rules file per op family the same
way): which dtype its output has, the layouts it reads and writes, its memory recipe (how
passes/memory_plan.py places it and passes/l1_sim.py allocates it), how the cost model prices it
(`Work`, the elements each engine processes), and how templates/render.py writes it (`Call`, the
ttnn function and its arguments, as data). Passes and templates implement each recipe once, so an
op of a known family is one descriptor and its tests (tests/test_op_descriptor.py adds sigmoid).

The descriptors sit in the converter, the lowest layer, so every layer may read them. Reference
functions import torch when first called: importing the IR stays cheap (the CLI's parser needs it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from converter.ir import Node


class Choice(StrEnum):
    """A closed set of names that reads and formats as its value (e.g. in generated code)."""

    def __repr__(self) -> str:  # as its value: records print as they did with plain strings
        return repr(str(self.value))

    def __hash__(self) -> int:  # as its value, so a member finds the entries keyed by its name
        return hash(str(self.value))


class Layout(Choice):
    """A ttnn tensor layout (TILE the layout, not the 32-wide tile)."""

    TILE = "TILE"
    ROW_MAJOR = "ROW_MAJOR"


class Dtype(Choice):
    """How an op's output dtype follows from its plan and its inputs."""

    OWN = "own"  # the dtype its plan names (the ttnn call takes a dtype argument)
    INPUT = "input"  # takes no dtype: writes its first input's
    INPUT_ROW_MAJOR = "input_row_major"  # its first input's, read ROW_MAJOR (no bfloat8_b: bfloat16)


class Writes(Choice):
    """Which layout an op writes (passes/layout_plan.py)."""

    TILE = "TILE"
    ROW_MAJOR = "ROW_MAJOR"
    AS_READ = "as_read"  # the layout it reads its inputs in (concat)
    AS_INPUT = "as_input"  # its input's (a graph output: no device op)
    IMAGE = "image"  # the model input: ROW_MAJOR when only convs read it (they tilize it themselves)
    CONV = "conv"  # decided with its sharding (layout_plan.conv_output_layout)


class Memory(Choice):
    """The memory recipe: the placements passes/memory_plan.py offers the op (`_modes`) and what
    passes/l1_sim.py allocates for it (`op_steps`)."""

    INPUT = "input"  # the model input: arrives from the host in DRAM
    OUTPUT = "output"  # a graph output: no device op, its tensor moved to DRAM
    CONV = "conv"
    UNARY = "unary"  # elementwise on one tensor: in place of its input, to L1 or in DRAM
    BINARY = "binary"  # elementwise on two tensors sharded alike, or in DRAM
    AFFINE = "affine"  # placed as UNARY; runs as a multiply into a temporary, then an add
    UPSAMPLE = "upsample"
    CONCAT = "concat"
    POOL = "pool"  # max/avg pool: height shards, or DRAM-sliced
    RESAMPLE = "resample"  # two matmuls streaming from DRAM
    GLOBAL_POOL = "global_pool"


ELTWISE = (Memory.UNARY, Memory.BINARY, Memory.AFFINE)  # elementwise: write where they read


class Cost(Choice):
    """Which cost model function prices the op (passes/cost_model.py)."""

    HOST = "host"  # no device work
    CONV = "conv"
    MATMULS = "matmuls"  # resample's permutes, (un)tilize and two matmuls
    VECTOR = "vector"  # the `Work` its descriptor declares


@dataclass(frozen=True)
class Work:
    """Elements each compute engine processes for one run of an op, and its real FLOPs; the cost
    model turns these into cycles with its own rates."""

    eltwise: int = 0  # FPU add-like passes (one per element)
    eltwise_mul: int = 0  # FPU multiplies (one per fidelity phase)
    sfpu: int = 0  # SFPU passes (activations)
    reduce: int = 0  # reduce-engine elements, one pass (max)
    reduce_mul: int = 0  # reduce-engine elements, one pass per fidelity phase (sums, means)
    flops: int = 0
    copies_output: bool = False  # data-movement kernels copy every output stick through the NoC
    halo: bool = False  # a sharded input is first exchanged with its neighbours (window ops)


class Lowering(Choice):
    """How templates/render.py lowers the op into generated code."""

    INPUT = "input"  # the forward's argument
    OUTPUT = "output"  # a head's result: only its planned moves
    CALL = "call"  # one ttnn call, written from `OpKind.call`
    CONV = "conv"  # a row of the conv table
    AFFINE = "affine"  # multiply by scale, add shift (constants)
    CONCAT = "concat"  # ttnn.concat on the channel axis
    UPSAMPLE = "upsample"  # on an [N, H, W, C] view; in row bands when planned so
    RESAMPLE = "resample"  # the module's resample() helper
    POOL = "pool"  # ttnn pool call with its geometry and `Call.attrs`
    GLOBAL_POOL = "global_pool"
    NONE = "none"  # removed before code generation (batch_norm)


@dataclass(frozen=True)
class Call:
    """The ttnn function an op is written as, and how its arguments are formed."""

    fn: str  # e.g. "ttnn.relu"
    dtype: bool = False  # takes dtype=plan dtype (ops without it write their input's dtype)
    scalar: str | None = None  # an attribute passed as a float after the inputs (ttnn.multiply)
    activations: bool = False  # the fused `activation` attribute as activations=[...]
    attrs: tuple[str, ...] = ()  # attributes passed as keywords, in this order (pools)


Reference = Callable[..., Any]  # (node, *input tensors) -> output tensor, fp32 torch
WorkOf = Callable[["Node", Sequence[tuple[int, ...]]], Work]  # (node, input shapes) -> its work


@dataclass(frozen=True)
class OpKind:
    name: str
    attrs: tuple[str, ...]  # the attributes every node of this kind carries (converter/ir.py checks)
    reference: Reference | None  # fp32 semantics (converter/interpreter.py); None: the model input
    memory: Memory
    lowering: Lowering
    doc: str = ""
    dtype: Dtype = Dtype.OWN
    reads: Layout | None = None  # the layout it reads its inputs in (None: any)
    writes: Writes = Writes.TILE
    cost: Cost = Cost.VECTOR
    work: WorkOf | None = None  # with Cost.VECTOR
    call: Call | None = None  # with Lowering.CALL and Lowering.POOL
    # output channel c is a function of input channel c alone, without parameters: widening the
    # input widens the output (passes/pad_channels.py, passes/merge_siblings.py)
    channelwise: bool = False
    aten_unary: tuple[str, ...] = ()  # ATen overloads ("relu.default") the front end lifts to it

    def __post_init__(self) -> None:
        if (self.cost is Cost.VECTOR) != (self.work is not None):
            raise ValueError(f"op {self.name!r}: a vector-priced op declares its work, and only it")
        if (self.lowering in (Lowering.CALL, Lowering.POOL)) != (self.call is not None):
            raise ValueError(f"op {self.name!r}: a call-lowered op declares its call, and only it")


REGISTRY: dict[str, OpKind] = {}


def register(kind: OpKind) -> OpKind:
    """Add an op kind (a descriptor module calls this once per op)."""
    if kind.name in REGISTRY and REGISTRY[kind.name] != kind:
        raise ValueError(f"op {kind.name!r} is registered twice")
    REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove an op kind (tests that register their own)."""
    REGISTRY.pop(name, None)


def op_kind(node_or_op: Node | str) -> OpKind:
    name = node_or_op if isinstance(node_or_op, str) else node_or_op.op
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}: no descriptor registered") from None


def is_input(node: Node | str) -> bool:
    return op_kind(node).memory is Memory.INPUT


def is_output(node: Node) -> bool:
    return REGISTRY[node.op].memory is Memory.OUTPUT


def is_conv(node: Node | str) -> bool:
    """A convolution (the matrix engine's op, which conv sharding configures)."""
    return op_kind(node).memory is Memory.CONV


def is_host(node: Node) -> bool:
    """The model input and the graph outputs: no device op of their own."""
    return REGISTRY[node.op].cost is Cost.HOST


def functional() -> Any:
    """torch.nn.functional, imported on the first reference call."""
    return importlib.import_module("torch.nn.functional")


def torch_module() -> Any:
    return importlib.import_module("torch")


def activated(node: Node, reference_output: Any) -> Any:
    """A fused activation (attribute `activation`, set by passes/fuse.py) applied to an op's output."""
    act = node.attrs.get("activation")
    if act is None:
        return reference_output
    if act == "relu":
        return reference_output.relu()
    raise ValueError(f"node {node.name!r}: unknown activation {act!r}")


# the op families register their descriptors (imported last: they use the names above)
from converter.ops import conv, data, eltwise, pool, resize  # noqa: E402, F401
