"""TRANSFORM: create every node's OpPlan with its dtypes, math fidelity and fp32 accumulation.

Rules (configurable through `DtypeRules`, then per-layer `Overrides`):
- activations are bfloat16 everywhere (the pixel-normalization input included);
- conv weights are bfloat8_b, except the first conv (reads the image: its 3-channel inner dimension
  is tiny and errors there propagate through the whole net) and the head predictors (convs whose
  output reaches a graph output through non-conv ops only: they produce the logits/offsets the
  post-processing thresholds), which keep bfloat16;
- fidelity follows the weights: HiFi2 with bfloat8_b weights (more fidelity phases add nothing to
  an 8-bit mantissa), HiFi4 with bfloat16 weights; non-conv ops HiFi4 (ttnn ignores it or uses it
  for pooling/bilinear reductions);
- `DtypeRules.performance()` is a named alternative with LoFi everywhere (see its docstring);
- fp32_dest_acc for convs whose inner dimension C_in*kh*kw/groups reaches `fp32_acc_min_inner_dim`
  (long bf16 accumulations lose precision) and for the bf16 layers above; never for bilinear
  upsample (ttnn rejects it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from converter.ir import Graph, Node
from passes.overrides import Overrides
from passes.plan import OpPlan


@dataclass(frozen=True)
class DtypeRules:
    activation_dtype: str = "bfloat16"
    weights_dtype: str = "bfloat8_b"
    bf16_first_conv: bool = True
    bf16_predictors: bool = True
    fidelity_bf8: str = "HiFi2"
    fidelity_bf16: str = "HiFi4"
    fp32_acc_min_inner_dim: int = 4608  # e.g. 3x3x512: res5 and the ASPP convs, not 3x3x256

    @classmethod
    def performance(cls) -> DtypeRules:
        """Opt-in speed profile: LoFi wherever Tenstorrent's hand-written Panoptic-DeepLab uses it,
        i.e. every conv (its default compute config, docs/research/handwritten-pdl-and-cost-constants.md
        section 1.2) and the bilinear/pooling reductions (its final upsample matmuls run LoFi, 1.7).
        Dtypes and fp32 accumulation stay as in the default rules. Not the default: whether LoFi
        keeps PCC >= 0.99 per head (goals 0.999 semantic, 0.995 center/offset) against Detectron2
        is measured with fidelity emulated; the integrator switches once it is."""
        return cls(fidelity_bf8="LoFi", fidelity_bf16="LoFi")


def _first_convs(graph: Graph) -> set[str]:
    """Convs whose input does not pass through another conv (they read the image)."""
    reach: dict[str, bool] = {}  # node -> "a conv lies between the input and this node's output"
    firsts = set()
    for n in graph.nodes:
        after_conv = any(reach[i] for i in n.inputs)
        if n.op == "conv2d":
            if not after_conv:
                firsts.add(n.name)
            after_conv = True
        reach[n.name] = after_conv
    return firsts


def _predictors(graph: Graph) -> set[str]:
    """Convs from which a graph output is reached without crossing another conv."""
    by_name = {n.name: n for n in graph.nodes}
    found, stack, seen = set(), list(graph.outputs.values()), set()
    while stack:
        n = by_name[stack.pop()]
        if n.name in seen:
            continue
        seen.add(n.name)
        if n.op == "conv2d":
            found.add(n.name)
        else:
            stack.extend(n.inputs)
    return found


def _conv_plan(node: Node, rules: DtypeRules, keep_bf16: str | None) -> tuple[OpPlan, str]:
    a = node.attrs
    inner = a["in_channels"] // a["groups"] * a["kernel_size"][0] * a["kernel_size"][1]
    wdt = "bfloat16" if keep_bf16 else rules.weights_dtype
    fidelity = rules.fidelity_bf8 if wdt == "bfloat8_b" else rules.fidelity_bf16
    fp32_acc = bool(keep_bf16) or inner >= rules.fp32_acc_min_inner_dim
    why = f"weights {wdt}" + (f" ({keep_bf16})" if keep_bf16 else " (default)")
    why += f", {fidelity}, fp32 acc {'on' if fp32_acc else 'off'} (inner dim {inner})"
    return OpPlan(rules.activation_dtype, wdt, fidelity, fp32_acc), why


def dtype_policy(graph: Graph, rules: DtypeRules = DtypeRules(), overrides: Overrides | None = None) -> Graph:
    firsts = _first_convs(graph) if rules.bf16_first_conv else set()
    predictors = _predictors(graph) if rules.bf16_predictors else set()
    nodes = []
    for n in graph.nodes:
        if n.op == "conv2d":
            keep = "first conv" if n.name in firsts else "head predictor" if n.name in predictors else None
            plan, why = _conv_plan(n, rules, keep)
        else:
            plan, why = OpPlan(rules.activation_dtype, None, rules.fidelity_bf16, False), "activation dtype"
        pin = overrides.for_node(n) if overrides else None
        if pin:
            changes = {f: getattr(pin, f) for f in ("dtype", "weights_dtype", "math_fidelity", "fp32_dest_acc")
                       if getattr(pin, f) is not None}
            if changes:
                plan = dataclasses.replace(plan, **changes)
                why += "; override " + ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
        if n.op == "upsample" and n.attrs["mode"] == "bilinear" and plan.fp32_dest_acc:
            plan = dataclasses.replace(plan, fp32_dest_acc=False)
            why += "; fp32 acc off (ttnn bilinear upsample rejects it)"
        nodes.append(dataclasses.replace(n, plan=dataclasses.replace(plan, notes=plan.notes + (f"dtype: {why}",))))
    return graph.replace_nodes(nodes)
