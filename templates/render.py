"""Planned IR `Graph` -> one readable TTNN Python module (text), through the jinja2 templates beside it.

The renderer decides nothing about the device: every dtype, fidelity, conv config, placement,
tensor layout, reshard, layout conversion, reallocation and deallocation comes from the nodes'
`OpPlan` (memory planning simulates exactly these statements). What it adds are the lowering details
the ttnn API imposes on a [1, 1, N*H*W, C] activation convention:
- reshapes to [N, H, W, C] around upsample (views of ROW_MAJOR tensors, no copy); global average
  pooling of a batch of 1 reads the flat tensor directly (H=1, W=N*H*W), so no copy is made; a batch
  of N > 1 is pooled on an [N, H, W, C] reshape and flattened back;
- Python names for tensors, derived from the Detectron2 module paths.

Python computes the literal ttnn expressions (`ttnn.bfloat16`, memory configs, Conv2dConfig fields);
the templates decide how statements and tables read. Same graph + plan -> byte-identical text.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from converter.errors import UserError
from converter.ir import Graph, Node
from converter.ops import Lowering, OpKind, is_input, op_kind
from hardware.targets import DEFAULT_L1_SMALL_SIZE, Target, get_target
from passes.plan import ROW_MAJOR, TILE_LAYOUT, OpPlan, Placement, conv_of
from passes.shards import ConvShape, physical
from templates.methods import Block, split

# Room for one captured forward's commands (a few hundred programs) in the device's trace region.
TRACE_REGION_SIZE = 8 * 2**20

RELU = "ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)"

# Prefixes dropped from node names to make Python names (the full name stays in the table key).
_NAME_PREFIXES = (("backbone.", ""), ("sem_seg_head.", "sem_"), ("ins_embed_head.", "ins_"))


class CodegenError(ValueError):
    """A graph the generator cannot lower (a compiler bug upstream, or an unplanned graph)."""


# ---------------------------------------------------------------- literal ttnn expressions


def dtype_expr(dtype: str) -> str:
    return f"ttnn.{dtype}"


def layout_expr(layout: str) -> str:
    return "ttnn.TILE_LAYOUT" if layout == TILE_LAYOUT else "ttnn.ROW_MAJOR_LAYOUT"


class Declared:
    """Configs the module declares once, by name, in first-use order: expression -> name."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.names: dict[str, str] = {}

    def _declare(self, expr: str, name: str) -> str:
        if expr not in self.names:
            taken, base, i = set(self.names.values()), name, 2
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            self.names[expr] = name
        return self.names[expr]

    def memory(self, p: Placement) -> str:
        """A memory config: ttnn's own for DRAM and interleaved L1, else a named L1 shard spec."""
        if not p.sharded:
            return f"ttnn.{p.buffer}_MEMORY_CONFIG"
        if p.buffer != "L1":
            raise CodegenError(f"sharded placement in {p.buffer}: only L1 shards are supported")
        if p.grid is None or p.shard_shape is None:
            raise CodegenError(f"sharded placement without grid or shard shape: {p}")
        cores = p.num_cores if p.num_cores is not None else p.grid[0] * p.grid[1]
        (rows, cols), kind = p.shard_shape, p.layout.removesuffix("_SHARDED")
        grid = "" if tuple(p.grid) == tuple(self.target.grid) else f"_GRID{p.grid[0]}x{p.grid[1]}"
        return self._declare(
            f"sharded({kind}, {tuple(p.grid)}, {cores}, {(rows, cols)})", f"{kind}_{cores}CORES_{rows}x{cols}{grid}"
        )

    def compute(self, fidelity: str, fp32_acc: bool) -> str:
        """A compute kernel config; fp32 accumulation comes with packer_l1_acc (as the planner's L1 model
        assumes)."""
        flag = bool_expr(fp32_acc)
        expr = (
            f"ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.{fidelity}, "
            f"math_approx_mode=False, fp32_dest_acc_en={flag}, packer_l1_acc={flag})"
        )
        return self._declare(expr, f"COMPUTE_{fidelity.upper()}{'_FP32_ACC' if fp32_acc else ''}")

    def of_kind(self, prefix: str) -> list[tuple[str, str]]:
        return [(name, expr) for expr, name in self.names.items() if expr.startswith(prefix)]


def slice_config_expr(slice_type: str, num_slices: int) -> str:
    kind = {"DRAM_SLICE_HEIGHT": "Conv2dDRAMSliceHeight", "DRAM_SLICE_WIDTH": "Conv2dDRAMSliceWidth"}[slice_type]
    return f"ttnn.Conv2dSliceConfig(slice_type=ttnn.{kind}, num_slices={num_slices})"


def bool_expr(value: bool) -> str:
    return "True" if value else "False"


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    h, w = v
    return h, w


# ---------------------------------------------------------------- names and layouts


def python_names(graph: Graph) -> dict[str, str]:
    """Node name -> a unique Python identifier (readable, derived from the module path)."""
    names: dict[str, str] = {}
    used: set[str] = {"self", "taps", "ttnn"}
    for node in graph:
        if is_input(node):
            base = "x"
        else:
            base = node.name
            for prefix, short in _NAME_PREFIXES:
                if base.startswith(prefix):
                    base = short + base[len(prefix) :]
                    break
            base = re.sub(r"\W+", "_", base).strip("_") or node.op
            if base[0].isdigit() or keyword.iskeyword(base):
                base = f"{node.op}_{base}"
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        names[node.name] = name
    return names


def _plan(node: Node) -> OpPlan:
    if not isinstance(node.plan, OpPlan) or node.plan.output is None:
        raise CodegenError(f"node {node.name!r} ({node.op}) has no complete plan: run the passes first")
    return node.plan


def _output(node: Node) -> Placement:
    """Where memory planning put the node's output (a CodegenError if it did not)."""
    output = _plan(node).output
    assert output is not None, "_plan checks it"
    return output


# ---------------------------------------------------------------- per-op statement records


@dataclass(frozen=True)
class Move:
    """`var = call` before an op (a planned reshard or a layout change); `free` is then deallocated."""

    var: str
    fn: str
    args: tuple[str, ...]
    free: str | None


@dataclass
class Op:
    """One forward step: what the template needs to write it."""

    kind: str  # template macro name
    node: str
    var: str
    source: str
    args: dict[str, Any] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)  # reshards and layout changes before the op
    frees: list[str] = field(default_factory=list)  # vars deallocated after the op
    taps: list[str] = field(default_factory=list)  # tap names stored from this op's output
    block: tuple[str, str, str] = ("", "", "")  # (role, Detectron2 module, method name) it runs in


_HEADS = {"sem_seg_head": "sem", "ins_embed_head": "ins"}


def _block(node: Node, previous: tuple[str, str, str] | None) -> tuple[str, str, str]:
    """(role, module, method name) of the Detectron2 module whose forward method runs the op: the stem,
    a bottleneck, a decoder stage, a head's convs and predictors; an op a head runs itself (upsample,
    concat) joins the stage before it."""
    source = node.source.split(" + ")[0]
    parts = source.split(".") if source else []
    if not parts:
        return "normalize", "the pixel normalization", "normalize"
    if parts[0] == "backbone" and len(parts) > 1:
        if parts[1].startswith("res") and len(parts) > 2:
            return "bottleneck", ".".join(parts[:3]), f"{parts[1]}_{parts[2]}"
        return parts[1], ".".join(parts[:2]), parts[1]
    if parts[0] in _HEADS:
        head = _HEADS[parts[0]]
        if len(parts) > 3 and parts[1] == "decoder" and parts[3] == "project_conv":  # the ASPP
            return "aspp", ".".join(parts[:4]), f"{head}_aspp"
        if len(parts) > 2 and parts[1] == "decoder":
            return f"decoder_{parts[2]}", ".".join(parts[:3]), f"{head}_decoder_{parts[2]}"
        if len(parts) == 1 and previous is not None and previous[1].startswith(parts[0]):
            return previous
        return "head", parts[0], f"{head}_head"
    name = re.sub(r"\W+", "_", parts[0])
    return name, parts[0], name


def _conv_summary(a: dict[str, Any], h: int, w: int) -> str:
    """'64->64 3x3/2 dilation 2, relu' (stride and dilation only when not 1), for the forward's comments."""
    kh, kw = _pair(a["kernel_size"])
    text = f"{a['in_channels']}->{a['out_channels']} {kh}x{kw}"
    if _pair(a["stride"]) != (1, 1):
        text += f"/{_pair(a['stride'])[0]}"
    if _pair(a["dilation"]) != (1, 1):
        text += f" dilation {_pair(a['dilation'])[0]}"
    if a["activation"]:
        text += f", {a['activation']}"
    text += f" on {h}x{w}"
    if a.get("reads_merged"):
        text += f"; zero weights where it reads the other convs' channels of {', '.join(a['reads_merged'])}"
    return text


def _conv_row(node: Node, input_shape: tuple[int, ...], layout: str, declared: Declared) -> list[tuple[str, Any]]:
    plan = _plan(node)
    if plan.conv is None:
        raise CodegenError(f"conv {node.name!r} has no ConvConfig: run conv sharding first")
    a = node.attrs
    n, _, h, w = input_shape
    cc = plan.conv
    out = plan.output
    assert out is not None
    config = [("weights_dtype", dtype_expr(plan.weights_dtype or "bfloat16"))]
    if a["activation"] not in (None, "relu"):
        raise CodegenError(f"conv {node.name!r}: unsupported fused activation {a['activation']!r}")
    parts, grouped = cc.channel_slices, a["groups"] > 1
    # partial convs over input-channel groups (conv2d_by_channels): the relu runs on their sum, except
    # for a grouped conv, whose parts are whole groups with their own output channels
    if a["activation"] == "relu" and (parts == 1 or grouped):
        config.append(("activation", RELU))
    config += [
        ("shard_layout", f"ttnn.TensorMemoryLayout.{cc.shard_layout}"),
        ("act_block_h_override", str(cc.act_block_h)),
    ]
    if cc.shard_layout == "WIDTH_SHARDED":
        config.append(("act_block_w_div", str(cc.act_block_w_div)))
    config += [
        ("enable_act_double_buffer", bool_expr(cc.enable_act_double_buffer)),
        ("enable_weights_double_buffer", bool_expr(cc.enable_weights_double_buffer)),
        ("output_layout", layout_expr(layout)),
        # ttnn keeps every conv's sliding-window config tensors for the module's life: in L1_SMALL they
        # add up past its 32 KB over a forward (real ttnn's out-of-memory); in DRAM, as Tenstorrent's
        # hand-written model keeps them, they cost L1 nothing
        ("config_tensors_in_dram", "True"),
    ]
    if cc.grid is not None and cc.num_cores:
        # pin the planned cores: on a bigger chip ttnn would otherwise spread over the whole grid
        config += [
            ("core_grid", f"cores(grid={tuple(cc.grid)}, count={cc.num_cores})"),
            ("override_sharding_config", "True"),
        ]
    # L1_FULL said explicitly: with None, ttnn slices a DRAM-input conv by its own estimate
    slice_expr = (
        "ttnn.Conv2dL1FullSliceConfig"
        if cc.slice_type == "L1_FULL"
        else slice_config_expr(cc.slice_type, cc.num_slices)
    )
    by_channels = [
        ("channel_slices", str(parts)),
        ("join", '"concat"' if grouped else '"sum"'),
        ("sum_activations", f"[{RELU}]" if a["activation"] == "relu" and not grouped else "[]"),
    ]
    conv = ConvShape.of(node, input_shape).channel_part(parts)  # the whole conv when parts is 1
    return [
        ("batch_size", str(n)),
        ("input_height", str(h)),
        ("input_width", str(w)),
        ("in_channels", str(conv.in_channels)),
        ("out_channels", str(conv.out_channels)),
        ("kernel_size", str(_pair(a["kernel_size"]))),
        ("stride", str(_pair(a["stride"]))),
        ("padding", str(_pair(a["padding"]))),
        ("dilation", str(_pair(a["dilation"]))),
        ("groups", str(conv.groups)),
        ("dtype", dtype_expr(plan.dtype)),
        ("conv_config", Constructed("ttnn.Conv2dConfig", config)),
        ("compute_config", declared.compute(plan.math_fidelity, plan.fp32_dest_acc)),
        ("slice_config", slice_expr),
        ("memory_config", declared.memory(out)),
        *(by_channels if parts > 1 else []),
    ]


def _module_prefixes(module: str) -> tuple[str, ...]:
    """The Python name prefixes of a module's tensors (python_names: 'backbone.res4.3' -> 'res4_3_'), and of
    the merged convs it shares with the other head ('sem_seg_head.decoder.res5' -> 'merged_decoder_res5_')."""
    for prefix, short in _NAME_PREFIXES:
        if (module + ".").startswith(prefix):
            rest = module[len(prefix) :]
            own = re.sub(r"\W+", "_", short + rest).rstrip("_") + "_"
            return (own, re.sub(r"\W+", "_", "merged." + rest).rstrip("_") + "_") if short else (own,)
    return (re.sub(r"\W+", "_", module) + "_",)


class _Lowering:
    """Walks the planned graph once, in program order, and collects what the template writes."""

    def __init__(self, graph: Graph, target: Target) -> None:
        self.graph = graph
        self.declared = Declared(target)
        self.by_name = {n.name: n for n in graph}
        self.var = python_names(graph)
        self.conv_rows: list[tuple[str, list[tuple[str, Any]]]] = []
        self.memory_rows: list[tuple[str, str]] = []
        self.constants: dict[str, tuple[tuple[int, ...], str]] = {}
        self.banded = False  # an upsample runs in row bands: the module gets upsample_bands()
        self.resampled = False  # a resample op: the module gets resample()
        self.channel_sliced = False  # a conv over input-channel groups: the module gets conv2d_by_channels()
        self.ops: list[Op] = []
        self.placement: dict[str, Placement] = {}  # where each tensor is now, as the walk proceeds
        # forward() never frees its argument: the caller owns it (a traced program rewrites it in place)
        self.caller_owned = {n.name for n in graph if is_input(n)}
        taps = graph.meta.get("taps", {})
        self.taps_by_node: dict[str, list[str]] = {}
        for tap, node_name in sorted(dict(taps).items()):
            self.taps_by_node.setdefault(node_name, []).append(tap)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.by_name[name].out.shape)

    def flat_shape(self, name: str) -> tuple[int, int, int, int]:
        n, c, h, w = self.shape(name)
        return (1, 1, n * h * w, c)

    def input_placement(self, node: Node) -> Placement:
        """Where the op's first input lives when the op runs (after the planned moves)."""
        return self.placement[node.inputs[0]]

    def run(self) -> None:
        block = None
        for node in self.graph:
            if is_input(node):
                self.placement[node.name] = _output(node)
                continue
            op = self.lower(node)
            self.placement[node.name] = _output(node)
            if op is None:
                continue
            op.block = block = _block(node, block)
            self.ops.append(op)

    def blocks(self, statement: Any) -> list[Block]:
        """The forward's statements (`statement(op)` writes one op's), grouped by the module running them."""
        out: list[Block] = []
        for op in self.ops:
            code = str(statement(op))
            if out and (out[-1].role, out[-1].module, out[-1].name) == op.block:
                out[-1] = dataclasses.replace(out[-1], code=out[-1].code + code)
            else:
                role, module, name = op.block
                out.append(Block(role, module, name, _module_prefixes(module), code))
        return out

    def prepare_inputs(self, node: Node, op: Op) -> list[str]:
        """Input variables after the plan's reallocations, moves and layout conversions.

        A reallocation or move (spill, reshard) replaces the tensor for all later readers. A layout
        conversion makes a temporary freed after the op; when the op is the source's last use, the
        source is freed right after the conversion instead.
        """
        plan = _plan(node)
        for name in plan.reallocate_before:
            op.moves.append(Move(self.var[name], "ttnn.reallocate", (self.var[name],), None))
        for name, placement in (*plan.spill_before, *plan.reshard_inputs):
            # the caller's tensor is copied, not freed; the copy is forward()'s own
            fn = "ttnn.to_memory_config" if name in self.caller_owned else "move"
            op.moves.append(Move(self.var[name], fn, (self.var[name], self.declared.memory(placement)), None))
            self.caller_owned.discard(name)
            self.placement[name] = placement
        last_use = set(plan.deallocate_after)
        converted = dict(plan.layout_inputs)
        args = []
        for name in node.inputs:
            v = self.var[name]
            want = converted.get(name)
            if want is not None:
                # ROW_MAJOR has no bfloat8_b
                cast: tuple[str, ...] = (
                    ("dtype=ttnn.bfloat16",)
                    if want == ROW_MAJOR and _plan(self.by_name[name]).dtype == "bfloat8_b"
                    else ()
                )
                # ROW_MAJOR height shards are exactly as wide as the channels, TILE ones whole tiles
                src = self.placement[name]
                converted_placement = physical(src, self.shape(name)[1], want)
                if converted_placement != src:
                    cast += (f"memory_config={self.declared.memory(converted_placement)}",)
                tmp = f"{v}_{'rm' if want == ROW_MAJOR else 'tiled'}"
                if not any(m.var == tmp for m in op.moves):  # an op reading one tensor twice converts it once
                    free = v if name in last_use and name not in self.caller_owned else None
                    op.moves.append(Move(tmp, "ttnn.to_layout", (v, layout_expr(want), *cast), free))
                    op.frees.append(tmp)
                v = tmp
            elif name in last_use and name not in self.caller_owned and v not in op.frees:
                op.frees.append(v)
            args.append(v)
        # tensors that die here without being read as an input (e.g. an unused result)
        op.frees += [self.var[n] for n in plan.deallocate_after if n not in node.inputs and n not in self.caller_owned]
        return args

    def lower(self, node: Node) -> Op | None:
        _plan(node)
        kind = op_kind(node)
        op = Op(
            kind=kind.lowering.value,
            node=node.name,
            var=self.var[node.name],
            source=node.source or "model (top level)",
            taps=self.taps_by_node.get(node.name, []),
        )
        if kind.lowering is Lowering.OUTPUT:
            # a head's result: nothing to compute (the name follows its producer), only planned moves
            self.var[node.name] = self.var[node.inputs[0]]
            self.prepare_inputs(node, op)
            return op if op.moves else None
        if kind.lowering is Lowering.CONV:
            self.lower_conv(node, op)
            return op
        lower = _LOWER.get(kind.lowering)
        if lower is None:
            raise CodegenError(
                f"no lowering for op {node.op!r} (node {node.name!r}); batch_norm must be folded before code generation"
            )
        plan = _plan(node)
        self.memory_rows.append((node.name, self.declared.memory(_output(node))))
        op.args["dtype"] = dtype_expr(plan.dtype)
        lower(self, node, op, kind)
        return op

    def lower_conv(self, node: Node, op: Op) -> None:
        self.conv_rows.append(
            (node.name, _conv_row(node, self.shape(node.inputs[0]), _plan(node).layout, self.declared))
        )
        (x,) = self.prepare_inputs(node, op)
        n, c, h, w = self.shape(node.inputs[0])
        summary = _conv_summary(node.attrs, h, w)
        groups = conv_of(node).channel_slices
        if groups > 1:
            summary += f", as {groups} partial convs over input-channel groups"
            self.channel_sliced = True
        op.args = {
            "x": x,
            "summary": summary if node.name == node.source else f"{node.source}: {summary}",
            "method": "self.conv2d_by_channels" if groups > 1 else "self.conv2d",
        }

    def lower_call(self, node: Node, op: Op, kind: OpKind) -> None:
        """One ttnn call from the descriptor's `Call`: inputs, then a scalar attribute, then keywords."""
        call = kind.call
        assert call is not None, "a call-lowered op declares its call"
        ins = self.prepare_inputs(node, op)
        a = node.attrs
        kwargs: list[tuple[str, Any]] = []
        if call.activations:
            if a["activation"] not in (None, "relu"):
                raise CodegenError(f"{node.op} {node.name!r}: unsupported fused activation {a['activation']!r}")
            if a["activation"] == "relu":
                kwargs.append(("activations", f"[{RELU}]"))
        if call.dtype:
            kwargs.append(("dtype", op.args["dtype"]))
        kwargs.append(("memory_config", f'OUTPUT_MEMORY["{node.name}"]'))
        scalar = [repr(float(a[call.scalar]))] if call.scalar else []
        op.args.update(fn=call.fn, positional=ins + scalar, kwargs=kwargs)

    def lower_affine(self, node: Node, op: Op, kind: OpKind) -> None:
        (x,) = self.prepare_inputs(node, op)
        shape = (1, 1, 1, self.shape(node.inputs[0])[1])
        self.constants.update({f"{node.name}.{k}": (shape, _plan(node).dtype) for k in ("scale", "shift")})
        op.args.update(x=x)

    def lower_concat(self, node: Node, op: Op, kind: OpKind) -> None:
        if node.attrs["dim"] not in (1, -3):
            raise CodegenError(f"concat {node.name!r} on dim {node.attrs['dim']}: only channel concat is lowered")
        op.args.update(inputs=self.prepare_inputs(node, op))

    def lower_upsample(self, node: Node, op: Op, kind: OpKind) -> None:
        a, plan = node.attrs, _plan(node)
        if a["align_corners"]:
            raise CodegenError(f"upsample {node.name!r}: ttnn.upsample has no align_corners=True")
        sh, sw = _pair(a["scale_factor"])
        (x,) = self.prepare_inputs(node, op)
        n, c, h, w = self.shape(node.inputs[0])
        op.args.update(x=x, nhwc=(n, h, w, c), scale=(sh, sw), mode=a["mode"], flat=self.flat_shape(node.name))
        if plan.slices is not None:  # ("ROW_BANDS", count): passes/memory_plan.py
            op.kind = "upsample_bands"
            op.args["bands"] = plan.slices[1]
            self.banded = True

    def lower_resample(self, node: Node, op: Op, kind: OpKind) -> None:
        (x,) = self.prepare_inputs(node, op)
        n, c, h, w = self.shape(node.inputs[0])
        oh, ow = self.shape(node.name)[2:]
        self.constants[f"{node.name}.rows"] = ((n, c, oh, h), "bfloat16")
        self.constants[f"{node.name}.cols"] = ((n, c, w, ow), "bfloat16")
        what = {"bilinear": "bilinear resize", "avg_pool": "average pool"}[node.attrs["kind"]]
        op.args.update(
            x=x,
            nhwc=(n, h, w, c),
            out_hw=(oh, ow),
            what=f"{what} {h}x{w} -> {oh}x{ow}",
            fidelity=f"ttnn.MathFidelity.{_plan(node).math_fidelity}",
        )
        self.resampled = True

    def lower_pool(self, node: Node, op: Op, kind: OpKind) -> None:
        call, a, plan = kind.call, node.attrs, _plan(node)
        assert call is not None, "a pool declares its call"
        (x,) = self.prepare_inputs(node, op)
        n, c, h, w = self.shape(node.inputs[0])
        kwargs = [
            ("batch_size", n),
            ("input_h", h),
            ("input_w", w),
            ("channels", c),
            ("kernel_size", _pair(a["kernel_size"])),
            ("stride", _pair(a["stride"])),
            ("padding", _pair(a["padding"])),
        ]
        kwargs += [(k, bool_expr(a[k]) if isinstance(a[k], bool) else _pair(a[k])) for k in call.attrs]
        output = _output(node)
        if output.sharded and not self.input_placement(node).sharded:
            # an interleaved input is sharded by the pool itself, as planned for its output
            kwargs.append(("applied_shard_scheme", f"ttnn.TensorMemoryLayout.{output.layout}"))
        if plan.slices is not None:
            kwargs.append(("dram_slice_config", slice_config_expr(*plan.slices)))
        kwargs += [("dtype", dtype_expr(plan.dtype)), ("output_layout", "ttnn.TILE_LAYOUT")]
        op.args.update(x=x, fn=call.fn, kwargs=kwargs)

    def lower_global_pool(self, node: Node, op: Op, kind: OpKind) -> None:
        (x,) = self.prepare_inputs(node, op)
        n, c, h, w = self.shape(node.inputs[0])
        # a batch of N is pooled per image on an [N, H, W, C] view, and flattened back to [1, 1, N, C]
        op.args.update(x=x, nhwc=(n, h, w, c) if n > 1 else None, flat=self.flat_shape(node.name))


# how each lowering (converter/ops: OpKind.lowering) of a device op other than a conv is written
_LOWER = {
    Lowering.CALL: _Lowering.lower_call,
    Lowering.AFFINE: _Lowering.lower_affine,
    Lowering.CONCAT: _Lowering.lower_concat,
    Lowering.UPSAMPLE: _Lowering.lower_upsample,
    Lowering.RESAMPLE: _Lowering.lower_resample,
    Lowering.POOL: _Lowering.lower_pool,
    Lowering.GLOBAL_POOL: _Lowering.lower_global_pool,
}


@dataclass(frozen=True)
class Constructed:
    """A keyword value built by a call with its own keywords, e.g. `ttnn.Conv2dConfig(...)`."""

    fn: str
    items: Sequence[tuple[str | None, Any]]


def wrap_kwargs(items: Sequence[tuple[str | None, Any]], indent: int, width: int = 100) -> str:
    """`k=v, k=v, ...` filling lines up to `width`, continuation lines indented by `indent`.

    A key None makes a positional argument; a `Constructed` value is written as its call, its
    keywords one level deeper.
    """
    parts = []
    for key, value in items:
        if isinstance(value, Constructed):
            inner = wrap_kwargs(value.items, indent + 4, width)
            value = f"{value.fn}(\n{' ' * (indent + 4)}{inner},\n{' ' * indent})"
        parts.append(value if key is None else f"{key}={value}")
    lines: list[str] = []
    line = ""
    for part in parts:
        candidate = f"{line} {part}," if line else f"{part},"
        if line and (indent + len(candidate) > width or "\n" in part or "\n" in line):
            lines.append(line)
            candidate = f"{part},"
        line = candidate
    lines.append(line)
    return f"\n{' ' * indent}".join(lines).rstrip(",")


def assign(
    target: str,
    fn: str,
    args: list[str],
    kwargs: list[tuple[str, Any]] | tuple[()] = (),
    comment: str = "",
    indent: int = 8,
) -> str:
    """`target = fn(args, k=v)  # comment` on one line (the formatter wraps it), the comment above it when
    the line would be long."""
    pad = " " * indent
    inner = ", ".join([*(str(a) for a in args), *(f"{k}={v}" for k, v in kwargs)])
    line = f"{pad}{target} = {fn}({inner})"
    if not comment:
        return line
    return f"{line}  # {comment}" if len(line) + len(comment) + 4 <= 100 else f"{pad}# {comment}\n{line}"


def class_name(variant: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9a-zA-Z]+", variant) if part)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("templates", "."),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["kwargs"] = wrap_kwargs
    env.filters["docwrap"] = lambda text, indent: textwrap.fill(
        text, 100 - indent - 6, break_on_hyphens=False, subsequent_indent=" " * indent
    )
    env.globals["assign"] = assign
    return env


def logical_shape(graph: Graph, name: str) -> tuple[int, ...]:
    """A node's NCHW shape as the model defines it (passes/pad_channels.py may widen C on the device)."""
    n, c, *hw = graph.node(name).out.shape
    return (n, graph.meta.get("logical_channels", {}).get(name, c), *hw)


def resample_source() -> str:
    """The generated modules' resample() method as the source of a class `Resample`."""
    return "class Resample:\n" + _environment().get_template("resample.py.j2").render()


def render_module(graph: Graph, target: str | Target, l1_small_size: int = DEFAULT_L1_SMALL_SIZE) -> str:
    """The generated TTNN module for a planned graph, as text (`l1_small_size`: what the plan assumed)."""
    target = get_target(target) if isinstance(target, str) else target
    for n in graph:  # overrides the passes plan and cost but this renderer does not emit (passes/overrides.py)
        p = n.plan if isinstance(n.plan, OpPlan) else None
        multicast = n.op == "resample" and n.attrs["program"] == "multicast"
        if p is not None and (p.dram_copies or (p.conv and p.conv.auto_slicing) or multicast):
            raise UserError(
                f"{n.name}: AUTO slicing, dram_copies and upsample matmuls_multicast are costed plans only "
                "and are not rendered; remove them from the overrides to generate code"
            )
    lowering = _Lowering(graph, target)
    lowering.run()
    (input_node,) = [n for n in graph if is_input(n)]
    input_plan = _plan(input_node)
    outputs = {head: lowering.var[node] for head, node in graph.outputs.items()}
    device_params = {"l1_small_size": l1_small_size, "trace_region_size": TRACE_REGION_SIZE}
    env = _environment()
    input_var = lowering.var[input_node.name]
    macros: Any = env.get_template("ops.j2").module  # jinja2 exposes a template's macros as attributes
    methods, calls = split(lowering.blocks(macros.statement), (input_var,), tuple(outputs.values()))
    text = env.get_template("module.py.j2").render(
        variant=graph.meta.get("variant", "model"),
        class_name=class_name(graph.meta.get("variant", "model")),
        target=target,
        input_shape=tuple(input_node.out.shape),
        input_dtype=dtype_expr(input_plan.dtype),
        input_layout=layout_expr(input_plan.layout),
        input_memory_config=lowering.declared.memory(input_plan.output),  # type: ignore[arg-type]
        device_params=device_params,
        output_shapes={h: logical_shape(graph, n) for h, n in graph.outputs.items()},
        outputs=outputs,
        taps={t: (n, logical_shape(graph, n)) for t, n in sorted(dict(graph.meta.get("taps", {})).items())},
        conv_rows=lowering.conv_rows,
        memory_rows=lowering.memory_rows,
        constants=lowering.constants,
        banded=lowering.banded,
        memory_configs=lowering.declared.of_kind("sharded("),
        compute_configs=lowering.declared.of_kind("ttnn.WormholeComputeKernelConfig("),
        methods=methods,
        methods_by_name={m.name: m for m in methods},
        calls=calls,
        input_var=input_var,
        resampled=lowering.resampled,
        channel_sliced=lowering.channel_sliced,
    )
    return formatted(text)


def formatted(text: str) -> str:
    """`text` as the project's formatter writes Python (ruff format, lines up to 100 characters)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--isolated",
            "--line-length",
            "100",
            "--stdin-filename",
            "generated.py",
            "-",
        ],
        input=text,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CodegenError(f"the generated module is not valid Python: {proc.stderr.strip()}")
    return "".join(_short_comments(line) for line in proc.stdout.splitlines(keepends=True))


def _short_comments(line: str, width: int = 100) -> str:
    """A line over `width` for its comment: the comment wrapped on lines of its own above the code."""
    if len(line.rstrip("\n")) <= width or "#" not in line:
        return line
    code, sep, comment = (
        line.rstrip("\n").partition("  # ") if not line.lstrip().startswith("#") else ("", "", line.strip()[1:].strip())
    )
    indent = " " * (len(line) - len(line.lstrip()))
    wrapped = textwrap.wrap(comment, width - len(indent) - 2, break_on_hyphens=False, break_long_words=False)
    out = "".join(f"{indent}# {part}\n" for part in wrapped)
    return out + (code + "\n" if code.strip() else "")
