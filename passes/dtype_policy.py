"""TRANSFORM: create every node's OpPlan with its dtypes, math fidelity and fp32 accumulation.

Rules (configurable through `DtypeRules`, then per-layer `Overrides`):
- activations are bfloat16 (the pixel-normalization input included), except in the semantic head below;
- conv weights are bfloat8_b where the conv runs at 1/16 of the input resolution or less (res4, res5,
  ASPP: about 53 M of the 60 M parameters) and bfloat16 at higher resolutions; the first conv and the
  head predictors keep bfloat16 with HiFi4 and fp32 accumulation (they read the image / write what
  post-processing thresholds). Why there: bfloat8_b shares one exponent per 16 values, and an error in
  an early, high-resolution layer passes through every later one. Measured on the emulator
  (128x256, seeded trained-like weights, PCC sem/center/offset vs Detectron2 fp32): bf8 everywhere
  0.9964/0.9917/0.9958; bf8 at 1/16 only 0.9981/0.9968/0.9981; bf16 everywhere 0.9987/0.9970/0.9985;
  all at the same modeled latency (the convs are compute-bound);
- fidelity HiFi2 for every other conv: activations sit in SrcB, whose per-phase 7 bits drop a bf16
  value's last mantissa bit until HiFi3; HiFi3/HiFi4 measured only +0.001 on center for 1.3x/1.6x the
  modeled compute. Non-conv ops HiFi4 (ttnn ignores it or uses it for pooling/bilinear reductions);
- the semantic head's own convs (Detectron2 `sem_seg_head.*`, `lofi_modules`) run LoFi with
  bfloat8_b weights and outputs, its predictor excepted: semantic segmentation is an argmax over 19
  logits and tolerates what the instance head (center heatmap, offsets) and the shared backbone do
  not. Measured on the emulator at 512x1024 (blackhole-20, seeded trained-like weights, PCC
  sem/center/offset vs Detectron2 fp32, modeled ms; benchmarks/precision_experiments.py reproduces the
  table): HiFi2 everywhere 0.99914/0.99567/0.99691 at 63.3 ms; this rule 0.99685/0.99567/0.99691 at
  50.5 ms (0.2% of decided pixels change class). Tried on top of it and rejected: instance ASPP LoFi
  0.99098 center (too close to the floor, for 0.9 ms), instance decoder LoFi 0.98059, res2 LoFi
  0.98997, stem LoFi 0.98649, res4+res5 LoFi 0.96800, bfloat8_b weights everywhere 0.98950;
- `PRECISIONS["fast"]` (`DtypeRules.fast()`) is the numerics of Tenstorrent's hand-written model: LoFi,
  bfloat8_b weights and activations everywhere, fp32 accumulation. Measured PCC 0.988/0.919/0.921 at
  31.5 ms modeled (its hand-tuned plan: 0.987/0.918/0.916 at 40.0 ms): below the 0.99 floor on seeded
  weights, so it is opt-in (`pdl-convert --precision fast`, check it with --verify on real weights);
- a concat's inputs share one dtype (ttnn.concat checks it): a bfloat8_b producer concatenated with
  a bfloat16 tensor, or with an upsample (which reads ROW_MAJOR: no bfloat8_b), writes bfloat16;
- the matrix engine truncates (rounds toward zero) what its multipliers do not read: SrcB drops a
  bfloat16 activation's last mantissa bit below HiFi3, and LoFi's SrcA keeps 4 of a weight's 7
  mantissa bits. Each truncation shrinks a conv's output by its expected loss, and the shrinks compound
  over the ~60 convs: measured at 512x1024 (seed 0, scene 0 of pdl-demo :scenes) the semantic logits
  came out at 0.846x the reference's std, center 0.945x and offset 0.966x (a bias of +0.13 std, as
  their means are far from 0), at PCC 0.9967/0.9959/0.9972. `unbias_truncation` removes the bias
  without a slower fidelity: a LoFi conv's weights are rounded to nearest at the 4 mantissa bits SrcA
  reads (then the hardware's truncation drops nothing), and a conv that truncates a bfloat16 input has
  its weights scaled by 1/(1 - SRCB_TRUNCATION), the expected relative loss: the dropped bit is set
  half the time, worth 2^-8 of the value's exponent unit, against a mean magnitude of 1.5 units
  (mantissas of RNE-rounded results are uniform). Measured the same way: gain 1.001/1.002/1.007 (bias
  -0.017/-0.034 std), PCC 0.9982/0.9971/0.9979, at no modeled cost (the weights change, not the program;
  README "Accuracy policy" has both seeds and all scenes). bfloat8_b activations (7 bits with the
  leading one) fit SrcB whole. Off in `fast`. The PCC table above was measured before this rule;
- fp32_dest_acc for convs whose inner dimension C_in*kh*kw/groups reaches `fp32_acc_min_inner_dim`
  (long bf16 accumulations lose precision) and for the exact layers above; never for bilinear
  upsample (ttnn rejects it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from converter.ir import Graph, Node
from converter.ops import Dtype, Memory, Writes, is_conv, is_input, op_kind
from passes.overrides import Overrides
from passes.plan import DeviceDtype, MathFidelity, OpPlan, plan_of, stored_dtype


@dataclass(frozen=True)
class DtypeRules:
    activation_dtype: str = "bfloat16"
    weights_dtype: str = "bfloat8_b"  # convs at 1/`bf8_min_stride` of the input resolution or less
    high_res_weights_dtype: str = "bfloat16"  # the other convs
    bf8_min_stride: int = 16
    bf16_first_conv: bool = True
    bf16_predictors: bool = True
    fidelity: str = "HiFi2"
    fidelity_exact: str = "HiFi4"  # first conv and predictors
    # convs of these Detectron2 modules (source prefixes): `lofi_fidelity`, bfloat8_b weights and output
    lofi_modules: tuple[str, ...] = ("sem_seg_head.",)
    lofi_fidelity: str = "LoFi"
    fp32_acc_min_inner_dim: int = 4608  # e.g. 3x3x512: res5 and the ASPP convs, not 3x3x256
    unbias_truncation: bool = True  # weights prepared against the matrix engine's truncation (docstring)

    @classmethod
    def fast(cls) -> DtypeRules:
        """Tenstorrent's hand-written Panoptic-DeepLab numerics (every conv's compute config: LoFi,
        bfloat8_b weights and output, fp32 dest accumulation; docs/research/handwritten-pdl-and-cost-
        constants.md 1.2). Measured below the PCC floor with emulated fidelity (module docstring)."""
        return cls(
            activation_dtype="bfloat8_b",
            weights_dtype="bfloat8_b",
            high_res_weights_dtype="bfloat8_b",
            bf16_first_conv=False,
            bf16_predictors=False,
            fidelity="LoFi",
            fp32_acc_min_inner_dim=0,
            lofi_modules=(),
            unbias_truncation=False,
        )


# `--precision` of pdl-convert and pdl-demo
PRECISIONS = {"accurate": DtypeRules(), "fast": DtypeRules.fast()}
PRECISION_HELP = (
    "accurate (default): HiFi2, bfloat16 activations, bfloat8_b weights at 1/16 resolution, the semantic head "
    "LoFi; PCC >= 0.99 per head on the emulator. fast: LoFi and bfloat8_b everywhere, as Tenstorrent's "
    "hand-written model: about 0.6x the modeled latency, center PCC 0.92 on seeded weights (check real "
    "weights with pdl-convert --verify)"
)


def first_convs(graph: Graph) -> set[str]:
    """Convs whose input does not pass through another conv (they read the image)."""
    reach: dict[str, bool] = {}  # node -> "a conv lies between the input and this node's output"
    firsts = set()
    for n in graph.nodes:
        after_conv = any(reach[i] for i in n.inputs)
        if is_conv(n):
            if not after_conv:
                firsts.add(n.name)
            after_conv = True
        reach[n.name] = after_conv
    return firsts


def predictors_of(graph: Graph) -> set[str]:
    """Convs from which a graph output is reached without crossing another conv."""
    by_name = {n.name: n for n in graph.nodes}
    found, stack, seen = set(), list(graph.outputs.values()), set()
    while stack:
        n = by_name[stack.pop()]
        if n.name in seen:
            continue
        seen.add(n.name)
        if is_conv(n):
            found.add(n.name)
        else:
            stack.extend(n.inputs)
    return found


def _conv_plan(node: Node, stride: int, rules: DtypeRules, exact: str | None) -> tuple[OpPlan, str]:
    a = node.attrs
    inner = a["in_channels"] // a["groups"] * a["kernel_size"][0] * a["kernel_size"][1]
    dtype = rules.activation_dtype
    if exact:
        wdt, fidelity, why = "bfloat16", rules.fidelity_exact, f"weights bfloat16 ({exact})"
    elif node.source.startswith(rules.lofi_modules):
        dtype = wdt = "bfloat8_b"
        fidelity, why = rules.lofi_fidelity, "weights and output bfloat8_b (a lofi_modules layer)"
    else:
        wdt = rules.weights_dtype if stride >= rules.bf8_min_stride else rules.high_res_weights_dtype
        fidelity, why = rules.fidelity, f"weights {wdt} (runs at 1/{stride} resolution)"
    fp32_acc = bool(exact) or inner >= rules.fp32_acc_min_inner_dim
    why += f", {fidelity}, fp32 acc {'on' if fp32_acc else 'off'} (inner dim {inner})"
    return OpPlan(DeviceDtype(dtype), DeviceDtype(wdt), MathFidelity(fidelity), fp32_acc), why


def dtype_policy(graph: Graph, rules: DtypeRules = DtypeRules(), overrides: Overrides | None = None) -> Graph:
    firsts = first_convs(graph) if rules.bf16_first_conv else set()
    predictors = predictors_of(graph) if rules.bf16_predictors else set()
    nodes = []
    by_name = {n.name: n for n in graph.nodes}
    input_height = next(n.out.shape[2] for n in graph.nodes if is_input(n))
    for n in graph.nodes:
        kind = op_kind(n)
        if kind.memory is Memory.CONV:
            exact = "first conv" if n.name in firsts else "head predictor" if n.name in predictors else None
            stride = input_height // by_name[n.inputs[0]].out.shape[2]
            plan, why = _conv_plan(n, stride, rules, exact)
        else:
            # the image arrives from the host in bfloat16 whatever the activations are
            dtype = "bfloat16" if is_input(n) else rules.activation_dtype
            plan, why = OpPlan(DeviceDtype(dtype), None, MathFidelity(rules.fidelity_exact), False), "activation dtype"
        pin = overrides.for_node(n) if overrides else None
        if pin:
            changes = {
                f: getattr(pin, f)
                for f in ("dtype", "weights_dtype", "math_fidelity", "fp32_dest_acc")
                if getattr(pin, f) is not None
            }
            if pin.dram_copies:
                plan = dataclasses.replace(plan, dram_copies=pin.dram_copies)
            if changes:
                plan = dataclasses.replace(plan, **changes)
                why += "; override " + ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        if kind.writes is Writes.ROW_MAJOR and kind.dtype is Dtype.OWN and plan.dtype != "bfloat16":
            plan = dataclasses.replace(plan, dtype=DeviceDtype.BFLOAT16)
            why += f"; bfloat16 ({n.op} writes ROW_MAJOR, which has no bfloat8_b)"
        if kind.memory is Memory.UPSAMPLE and n.attrs["mode"] == "bilinear" and plan.fp32_dest_acc:
            plan = dataclasses.replace(plan, fp32_dest_acc=False)
            why += "; fp32 acc off (ttnn bilinear upsample rejects it)"
        nodes.append(dataclasses.replace(n, plan=dataclasses.replace(plan, notes=plan.notes + (f"dtype: {why}",))))
    return graph.replace_nodes(nodes)


# Expected relative loss of a bfloat16 value whose last mantissa bit SrcB drops (module docstring)
SRCB_TRUNCATION = 2.0**-8 / 1.5


def unbias_truncation(graph: Graph) -> Graph:
    """Each conv's `weights_scale` / `weights_round_srca` against the truncation of its fidelity (module
    docstring), from the dtypes the conv really reads (after concats and overrides)."""
    by_name = {n.name: n for n in graph.nodes}
    nodes = []
    for n in graph.nodes:
        if is_conv(n):
            p = plan_of(n)
            notes = []
            scale = 1.0
            if p.math_fidelity in ("LoFi", "HiFi2") and stored_dtype(n.inputs[0], by_name) == "bfloat16":
                scale = 1.0 / (1.0 - SRCB_TRUNCATION)
                notes.append(f"weights x {scale:.5f} (SrcB truncates the bfloat16 input)")
            round_srca = p.math_fidelity == "LoFi"
            if round_srca:
                notes.append("weights rounded to the 4 mantissa bits LoFi reads")
            if notes:
                n = dataclasses.replace(
                    n,
                    plan=dataclasses.replace(
                        p,
                        weights_scale=scale,
                        weights_round_srca=round_srca,
                        notes=p.notes + ("dtype: " + "; ".join(notes),),
                    ),
                )
        nodes.append(n)
    return graph.replace_nodes(nodes)


def one_dtype_per_concat(graph: Graph) -> Graph:
    """ttnn.concat needs all inputs in one dtype: a bfloat8_b producer concatenated with a bfloat16
    tensor (`stored_dtype`) writes bfloat16 instead."""
    by_name = {n.name: n for n in graph.nodes}

    def producer(name: str) -> Node:  # the node whose dtype `name` carries
        n = by_name[name]
        return producer(n.inputs[0]) if op_kind(n).dtype is Dtype.INPUT else n

    for cat in (n for n in graph.nodes if op_kind(n).memory is Memory.CONCAT):
        if len({stored_dtype(i, by_name) for i in cat.inputs}) == 1:
            continue
        for i in cat.inputs:
            p = producer(i)
            if plan_of(p).dtype == "bfloat8_b" and op_kind(p).dtype is Dtype.OWN:
                note = (
                    f"dtype: output bfloat16, not bfloat8_b: {cat.name} concatenates it with bfloat16 "
                    "(ttnn.concat needs one dtype)"
                )
                by_name[p.name] = dataclasses.replace(
                    p,
                    plan=dataclasses.replace(plan_of(p), dtype=DeviceDtype.BFLOAT16, notes=plan_of(p).notes + (note,)),
                )
    return graph.replace_nodes([by_name[n.name] for n in graph.nodes])
