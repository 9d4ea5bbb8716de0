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

The passes read the pins (dtype policy: dtypes/fidelity; conv sharding: sharding/slicing/
act_block_h; memory planning: memory). Unknown layers, fields or values raise UserError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from converter.errors import UserError
from converter.ir import Graph, Node
from converter.ops import is_conv
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


@dataclass(frozen=True)
class Overrides:
    layers: dict[str, LayerOverride]  # key (node name or source module) -> pins

    def for_node(self, node: Node) -> LayerOverride | None:
        """Pins of a node; a node-name key wins over a source-module key."""
        return self.layers.get(node.name) or self.layers.get(node.source)

    def check_against(self, graph: Graph) -> None:
        known = {n.name for n in graph.nodes} | {n.source for n in graph.nodes}
        for key in sorted(self.layers):
            if key not in known:
                raise UserError(
                    f"override names unknown layer {key!r}: use a node name or Detectron2 module "
                    f"path from the plan summary"
                )
        convs = {x for n in graph.nodes if is_conv(n) for x in (n.name, n.source)}
        for key, o in sorted(self.layers.items()):
            conv_only = [
                f for f in ("sharding", "slice_type", "act_block_h", "weights_dtype") if getattr(o, f) is not None
            ]
            if conv_only and key not in convs:
                raise UserError(f"override of {key!r} sets {', '.join(conv_only)}, which only apply to conv2d layers")


def _choice(key: str, field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UserError(f"override of {key!r}: {field} {value!r} is not one of {', '.join(allowed)}")
    return value


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
    }
    unknown = sorted(set(spec) - allowed)
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
        out["slice_type"] = _choice(key, "slicing type", s["type"], SLICE_TYPES)
        n = s.get("num_slices", 0)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or (out["slice_type"] != "L1_FULL" and n < 1):
            raise UserError(f"override of {key!r}: num_slices {n!r} must be a positive integer for DRAM slicing")
        out["num_slices"] = n if out["slice_type"] != "L1_FULL" else 0
    if "act_block_h" in spec:
        v = spec["act_block_h"]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v % 32:
            raise UserError(f"override of {key!r}: act_block_h {v!r} must be 0 or a positive multiple of 32")
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
    return LayerOverride(**out)


def parse_overrides(data: Any) -> Overrides:
    if not isinstance(data, dict) or not isinstance(data.get("layers"), dict) or set(data) - {"layers"}:
        raise UserError("overrides file must hold one mapping 'layers: {layer name: {field: value}}'")
    return Overrides({str(k): _parse_layer(str(k), v) for k, v in sorted(data["layers"].items())})


def load_overrides(path: Path | str) -> Overrides:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read overrides file {path}: {e.strerror}; pass an existing YAML/JSON file") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(
            f"overrides file {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
            f"{str(e).splitlines()[0]}"
        ) from None
    return parse_overrides(data)
