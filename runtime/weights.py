"""Host weights for a generated module: built from the planned IR graph, cached on disk.

The passes leave the final parameters in the nodes (BatchNorm folded, output scales folded), and
the plan says each one's device dtype. Conv weights go to ttnn as host ROW_MAJOR tensors (OIHW)
in float32 when the plan wants bfloat8_b or float32 on the device (the conv converts them once,
on its first call) and in bfloat16 when it wants bfloat16, as ttnn's conv2d documents; biases as
[1, 1, 1, O]. Per-channel constants (the pixel normalization) are [1, 1, 1, C] TILE tensors in the
op's dtype; a resample's matrices bfloat16 TILE tensors, one copy per image and channel (ttnn's
matmul broadcasts no batch of its first operand).

The cache holds these tensors (torch, host dtype) in one file per key; the key is the checkpoint's
hash plus the generated module's hash (which spells out the whole plan), so a warm load needs
neither tracing nor the passes. Files are written atomically and read with torch's weights-only
unpickler (the cache directory is the user's: its files are data); an entry that does not read back
as such tensors (damaged, or not ours) is rebuilt and replaced.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from converter.atomic import write_bytes
from converter.ir import Graph
from converter.ops import Lowering, op_kind
from passes.plan import plan_of

CACHE_FORMAT = 2  # bump when the cached content changes meaning


@dataclass(frozen=True)
class HostTensor:
    data: torch.Tensor  # already in the host dtype
    dtype: str  # ttnn dtype name of the host tensor
    layout: str  # "ROW_MAJOR" | "TILE"


@dataclass(frozen=True)
class WeightsReport:
    key: str
    path: Path
    warm: bool  # loaded from the cache
    seconds: float
    num_tensors: int
    num_bytes: int


_TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_HOST_DTYPES = ("float32", "bfloat16", "bfloat8_b")  # ttnn dtype names a host tensor is made in
_LAYOUTS = ("ROW_MAJOR", "TILE")


def _conv_host_dtype(weights_dtype: str | None) -> str:
    return "bfloat16" if weights_dtype == "bfloat16" else "float32"


def _conv_weights(node) -> torch.Tensor:
    """The conv's weights as the plan prepares them against the matrix engine's truncation
    (passes/dtype_policy.py: `weights_scale`, `weights_round_srca`)."""
    w = node.params["weight"].to(torch.float32) * node.plan.weights_scale
    if node.plan.weights_round_srca:
        # round to nearest even at 4 mantissa bits (float32 bits 0xfff80000): LoFi's SrcA reads those only
        bits = w.contiguous().view(torch.int32)
        w = ((bits + 0x3FFFF + ((bits >> 19) & 1)) & -0x80000).view(torch.float32)
    return w


def host_weights(graph: Graph) -> dict[str, HostTensor]:
    """Every parameter the generated module reads, by the name it reads it under."""
    out: dict[str, HostTensor] = {}
    for node in graph:
        lowering = op_kind(node).lowering
        if lowering is Lowering.CONV:
            if node.plan is None:
                raise ValueError(f"conv {node.name!r} has no plan: run the passes first")
            dtype = _conv_host_dtype(plan_of(node).weights_dtype)
            conv = plan_of(node).conv
            parts = conv.channel_slices if conv is not None else 1
            # a conv over input-channel groups (templates: conv2d_by_channels) reads each group's weights
            # under "<layer>.<group>": a plain conv's input channels, the bias with group 0's; a grouped
            # conv's whole groups (its own output channels), each with its biases
            grouped = node.attrs["groups"] > 1
            names = [node.name] if parts == 1 else [f"{node.name}.{g}" for g in range(parts)]
            weight = _conv_weights(node)
            weights = (weight,) if parts == 1 else weight.chunk(parts, dim=0 if grouped else 1)
            for name, w in zip(names, weights, strict=True):
                out[f"{name}.weight"] = HostTensor(w.to(_TORCH_DTYPE[dtype]).contiguous(), dtype, "ROW_MAJOR")
            if "bias" in node.params:
                bias = node.params["bias"].reshape(1, 1, 1, -1)
                biases = bias.chunk(parts, dim=3) if grouped else (bias,)
                for name, b in zip(names, biases, strict=False):
                    out[f"{name}.bias"] = HostTensor(b.to(_TORCH_DTYPE[dtype]).contiguous(), dtype, "ROW_MAJOR")
        elif lowering is Lowering.AFFINE:
            dtype = str(plan_of(node).dtype) if node.plan is not None else "float32"  # plain: the cache is data
            for key in ("scale", "shift"):
                t = node.params[key].reshape(1, 1, 1, -1).to(torch.float32)
                out[f"{node.name}.{key}"] = HostTensor(t, dtype, "TILE")
        elif lowering is Lowering.RESAMPLE:  # templates' resample(): rows [N, C, H', H] and cols^T [N, C, W, W']
            n, c = node.out.shape[:2]
            rows, cols = node.params["rows"], node.params["cols"].T
            out[f"{node.name}.rows"] = HostTensor(rows.expand(n, c, *rows.shape).contiguous(), "bfloat16", "TILE")
            out[f"{node.name}.cols"] = HostTensor(cols.expand(n, c, *cols.shape).contiguous(), "bfloat16", "TILE")
    return dict(sorted(out.items()))


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(checkpoint_digest: str, module_text: str) -> str:
    h = hashlib.sha256(f"pdl2ttnn-weights/{CACHE_FORMAT}\n{checkpoint_digest}\n".encode())
    h.update(module_text.encode())
    return h.hexdigest()[:32]


def _serialize(weights: dict[str, HostTensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({name: (w.data, w.dtype, w.layout) for name, w in weights.items()}, buf)
    return buf.getvalue()


def _deserialize(path: Path) -> dict[str, HostTensor] | None:
    """The cached weights at `path`, or None if there are none there or they do not read back."""
    try:
        raw = torch.load(path, weights_only=True)
        weights = {name: HostTensor(data, dtype, layout) for name, (data, dtype, layout) in raw.items()}
    except Exception:  # missing, truncated, not a torch file, or holding more than weights-only loads
        return None
    valid = all(
        isinstance(w.data, torch.Tensor) and w.dtype in _HOST_DTYPES and w.layout in _LAYOUTS for w in weights.values()
    )
    return weights if valid else None


def load_weights(cache_dir: Path, key: str, build: Callable[[], Graph]) -> tuple[dict[str, HostTensor], WeightsReport]:
    """The host weights under `key`: from the cache when they read back, else from `build()` (then cached)."""
    start = time.perf_counter()
    path = Path(cache_dir) / f"weights-{key}.pt"
    weights = _deserialize(path)
    warm = weights is not None
    if not warm and path.exists():
        print(
            f"weight cache entry {path} does not read back as host weights (damaged, or not ours): rebuilding it",
            file=sys.stderr,
        )
    if weights is None:
        weights = host_weights(build())
        write_bytes(path, _serialize(weights))
    report = WeightsReport(
        key,
        path,
        warm,
        time.perf_counter() - start,
        len(weights),
        sum(w.data.numel() * w.data.element_size() for w in weights.values()),
    )
    return weights, report


def to_ttnn(weights: dict[str, HostTensor], ttnn: ModuleType, mesh_mapper=None) -> dict[str, object]:
    """Host ttnn tensors (of the given ttnn, real or emulated) for the generated module's `params`;
    `mesh_mapper` (ttnn.ReplicateTensorToMesh) prepares them for every chip of a mesh."""
    layouts = {"ROW_MAJOR": ttnn.ROW_MAJOR_LAYOUT, "TILE": ttnn.TILE_LAYOUT}
    return {
        name: ttnn.from_torch(w.data, dtype=getattr(ttnn, w.dtype), layout=layouts[w.layout], mesh_mapper=mesh_mapper)
        for name, w in weights.items()
    }
