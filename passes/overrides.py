"""User pins for single layers: sharding, slicing, act_block_h, output memory, dtypes, fidelity.

A YAML or JSON file maps a node name or a Detectron2 source module to the fields to pin:

    layers:
      backbone.stem.conv1:            # node name ...
        weights_dtype: bfloat16
        math_fidelity: HiFi4
      sem_seg_head.predictor:         # ... or source module (pins every node from it)
        sharding: HEIGHT_SHARDED
        slicing: {type: DRAM_SLICE_WIDTH, num_slices: 4}
        act_block_h: 64
        memory: DRAM                  # where the output lives: L1 or DRAM
      backbone.res4:                  # block prefix: every node under backbone.res4.
        dtype: bfloat8_b
      "*.decoder.res3.fuse_conv.0":   # pattern (fnmatch) over node names and source modules
        channel_slices: 2

A node takes the fields of every key that matches it; per field the most specific key wins, from
least to most specific: pattern, block prefix (the longer the more specific), source module, node name.

- channel_slices: N   conv over N input-channel groups: N slices of the DRAM input, N partial convs
                      (the bias in the first), their sum by adds in DRAM, the activation on the last;
                      a grouped conv's parts are whole groups, concatenated (conv sharding picks this
                      itself for a conv that fits no other way).
Fields that say what Tenstorrent's hand-written model does and our renderer does not (yet): they
are planned and costed (benchmarks/measured/), and templates/render.py refuses to render them:
- slicing: {type: AUTO, num_slices: N}   ttnn's automatic DRAM slicing (slice_config None on a DRAM
                      input); N is the count ttnn picks, as real ttnn said it
                      (benchmarks/probe_auto_slices.py); 0 = it runs unsliced from DRAM.
- dram_copies: N      N extra copies of the output to DRAM (ttnn.clone / to_memory_config).
- upsample: matmuls_multicast   a bilinear upsample as two interpolation matmuls with multicast program
                      configs (Tenstorrent's 2D/1D MatmulMultiCoreReuseMultiCast, PR #36918): each operand
                      crosses DRAM once.
Op choices (passes/resample.py applies them; rendered): `upsample: nearest` runs an upsample
nearest-neighbour, `upsample: matmuls` as two interpolation matmuls (`resample`, one output tile row per
core at a time).

The passes read the pins (dtype policy: dtypes/fidelity; conv sharding: sharding/slicing/
act_block_h/channel slices; memory planning: memory). Unknown layers, fields or values raise UserError.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converter.errors import UserError
from converter.ir import Graph, Node
from converter.ops import is_conv
from converter.untrusted import load_yaml, printable, read_text
from passes.plan import BUFFERS, DTYPES, MATH_FIDELITIES, SLICE_TYPES

SHARDINGS = ("HEIGHT_SHARDED", "BLOCK_SHARDED", "WIDTH_SHARDED")


@dataclass(frozen=True)
class LayerOverride:
    sharding: str | None = None
    slice_type: str | None = None
    num_slices: int | None = None
    act_block_h: int | None = None
    memory: str | None = None
    dtype: str | None = None
    weights_dtype: str | None = None
    math_fidelity: str | None = None
    fp32_dest_acc: bool | None = None
    channel_slices: int | None = None
    dram_copies: int | None = None
    upsample: str | None = None  # UPSAMPLE_CHOICES


UPSAMPLE_CHOICES = ("nearest", "matmuls", "matmuls_multicast")
# ttnn's Conv2dConfig holds act_block_h_override as a uint32: a larger pin cannot even be constructed.
# (A block taller than the conv's shard is accepted by real ttnn, which then sizes its buffers for it.)
MAX_ACT_BLOCK_H = (1 << 32) - 32
CONV_ONLY = ("sharding", "slice_type", "act_block_h", "weights_dtype", "channel_slices")


def _is_pattern(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def _specificity(key: str, node: Node) -> tuple[int, int] | None:
    """How specifically `key` names `node` (larger wins), or None if it does not."""
    if key == node.name:
        return (3, 0)
    if key == node.source:
        return (2, 0)
    if _is_pattern(key):
        return (0, 0) if fnmatch.fnmatchcase(node.name, key) or fnmatch.fnmatchcase(node.source, key) else None
    if node.name.startswith(key + ".") or node.source.startswith(key + "."):
        return (1, len(key))
    return None


@dataclass(frozen=True)
class Overrides:
    layers: dict[str, LayerOverride]  # key (node name, source module, block prefix or pattern) -> pins

    def keys_for(self, node: Node) -> list[str]:
        """The keys that match `node`, least specific first."""
        hits = [(spec, k) for k in self.layers if (spec := _specificity(k, node)) is not None]
        return [k for _, k in sorted(hits)]

    def for_node(self, node: Node) -> LayerOverride | None:
        """Pins of a node: every matching key's fields, the more specific key winning per field."""
        keys = self.keys_for(node)
        if not keys:
            return None
        merged: dict[str, Any] = {}
        for k in keys:
            merged.update({f: v for f, v in dataclasses.asdict(self.layers[k]).items() if v is not None})
        if not is_conv(node):  # a block prefix or pattern pins convs' fields on the convs it covers only
            for f in CONV_ONLY:
                merged.pop(f, None)
            merged.pop("num_slices", None)
        return LayerOverride(**merged)

    def restricted_to(self, graph: Graph) -> Overrides:
        """The keys that name something in `graph` (one file for both variants: DeepLabV3+ has no
        instance head)."""
        return Overrides({k: v for k, v in self.layers.items() if any(_specificity(k, n) is not None for n in graph)})

    def check_against(self, graph: Graph) -> None:
        for key in sorted(self.layers):
            if not any(_specificity(key, n) is not None for n in graph.nodes):
                raise UserError(
                    f"override names unknown layer {key!r}: use a node name, Detectron2 module "
                    f"path, block prefix or pattern from the plan summary"
                )
        for key, o in sorted(self.layers.items()):
            exact = [n for n in graph.nodes if key in (n.name, n.source)]
            conv_only = [f for f in CONV_ONLY if getattr(o, f) is not None]
            if conv_only and exact and not any(is_conv(n) for n in exact):
                raise UserError(f"override of {key!r} sets {', '.join(conv_only)}, which only apply to conv2d layers")
            if o.upsample and exact and not any(n.op == "upsample" for n in exact):
                raise UserError(f"override of {key!r} sets upsample, which only applies to upsample layers")


def _choice(key: str, field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise UserError(f"override of {key!r}: {field} {_quote(value)} is not one of {', '.join(allowed)}")
    return value


def _quote(value: Any) -> str:
    text = printable(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_layer(key: str, spec: Any) -> LayerOverride:
    if not isinstance(spec, dict):
        raise UserError(f"override of {key!r} must be a mapping of fields, got {type(spec).__name__}")
    allowed = {
        "sharding",
        "slicing",
        "act_block_h",
        "memory",
        "dtype",
        "weights_dtype",
        "math_fidelity",
        "fp32_dest_acc",
        "channel_slices",
        "dram_copies",
        "upsample",
    }
    unknown = sorted(printable(str(f)) for f in set(spec) - allowed)
    if unknown:
        raise UserError(
            f"override of {key!r}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    out: dict[str, Any] = {}
    if "sharding" in spec:
        out["sharding"] = _choice(key, "sharding", spec["sharding"], SHARDINGS)
    if "slicing" in spec:
        s = spec["slicing"]
        if not isinstance(s, dict) or "type" not in s:
            raise UserError(f"override of {key!r}: slicing must be {{type: ..., num_slices: N}}")
        out["slice_type"] = _choice(key, "slicing type", s["type"], SLICE_TYPES + ("AUTO",))
        n = s.get("num_slices", 0)
        auto = out["slice_type"] == "AUTO"
        if (
            not isinstance(n, int)
            or isinstance(n, bool)
            or n < 0
            or (out["slice_type"] not in ("L1_FULL", "AUTO") and n < 1)
        ):
            raise UserError(f"override of {key!r}: num_slices {n!r} must be a positive integer for DRAM slicing")
        if auto and "num_slices" not in s:
            raise UserError(
                f"override of {key!r}: AUTO slicing needs num_slices, the count real ttnn picks "
                "(benchmarks/probe_auto_slices.py; 0 = unsliced)"
            )
        out["num_slices"] = n if out["slice_type"] != "L1_FULL" else 0
    if "act_block_h" in spec:
        v = spec["act_block_h"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v % 32 or v > MAX_ACT_BLOCK_H:
            raise UserError(
                f"override of {key!r}: act_block_h {v!r} must be 0 or a multiple of 32 up to {MAX_ACT_BLOCK_H}"
            )
        out["act_block_h"] = v
    if "memory" in spec:
        out["memory"] = _choice(key, "memory", spec["memory"], BUFFERS)
    for f in ("dtype", "weights_dtype"):
        if f in spec:
            out[f] = _choice(key, f, spec[f], DTYPES)
    if "math_fidelity" in spec:
        out["math_fidelity"] = _choice(key, "math_fidelity", spec["math_fidelity"], MATH_FIDELITIES)
    if "fp32_dest_acc" in spec:
        if not isinstance(spec["fp32_dest_acc"], bool):
            raise UserError(f"override of {key!r}: fp32_dest_acc must be true or false")
        out["fp32_dest_acc"] = spec["fp32_dest_acc"]
    for f, least in (("channel_slices", 2), ("dram_copies", 1)):
        if f in spec:
            v = spec[f]
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise UserError(f"override of {key!r}: {f} {v!r} must be an integer >= {least}")
            out[f] = v
    if "upsample" in spec:
        out["upsample"] = _choice(key, "upsample", spec["upsample"], UPSAMPLE_CHOICES)
    return LayerOverride(**out)


def parse_overrides(data: Any) -> Overrides:
    if not isinstance(data, dict) or not isinstance(data.get("layers"), dict) or set(data) - {"layers"}:
        raise UserError("overrides file must hold one mapping 'layers: {layer name: {field: value}}'")
    for k in data["layers"]:
        if not isinstance(k, str):
            raise UserError(f"override key {printable(repr(k))} is not a layer name; quote it as a string")
    return Overrides({k: _parse_layer(k, v) for k, v in sorted(data["layers"].items())})


def load_overrides(path: Path | str) -> Overrides:
    path = Path(path)
    what = f"overrides file {path}"
    text = read_text(path, "overrides file")
    if path.suffix != ".json":
        return parse_overrides(load_yaml(text, what))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{what} is not valid JSON: {printable(str(e))}") from None
    except RecursionError:
        raise UserError(
            f"{what} nests more levels deep than Python's parser holds; no overrides file needs that"
        ) from None
    return parse_overrides(data)
