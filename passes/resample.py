"""TRANSFORM: run an average pool or a bilinear upsample as a `resample` (two interpolation matmuls)
where the cost model says it is faster than ttnn's own op, or where ttnn's pool cannot hold the halo
of its windows in L1 at any slicing.

Both are separable linear maps (converter/resample.py). ttnn.avg_pool2d gathers every window through
a halo: the ASPP pooling of the released Cityscapes model at 1024x2048 (a 32x64 window, stride 1, over
2048 channels) is ~9e9 window reads there, and ttnn 0.81.1 finds no DRAM slicing for it on a 20-core
grid; as matmuls it is two small products per channel. A bilinear upsample by an integer scale stays
ttnn.upsample (one program instead of six). Resizes by non-integer scales are `resample` from the
front end (converter/trace.py). Both alternatives are costed alike: bfloat16, HiFi4, in DRAM.
"""

from __future__ import annotations

import dataclasses

from converter.errors import UserError
from converter.ir import Graph, Node
from converter.resample import avg_pool_matrix, bilinear_matrix
from hardware.targets import Target
from passes import cb_model
from passes.cost_model import Operand, op_cost
from passes.overrides import Overrides
from passes.plan import DRAM_INTERLEAVED, DeviceDtype, MathFidelity, OpPlan

_PLAN = OpPlan(DeviceDtype.BFLOAT16, None, MathFidelity.HiFi4, False, output=DRAM_INTERLEAVED)


def as_resample(n: Node, in_shape: tuple[int, ...], program: str = "one_row") -> Node | None:
    """`n` as a resample node (its matmuls' `program`: converter/ops/resize.py), or None if it is not a
    separable linear map."""
    h, w = in_shape[2:]
    oh, ow = n.out.shape[2:]
    a = n.attrs
    if n.op == "upsample" and a["mode"] == "bilinear":
        rows, cols, kind = (
            bilinear_matrix(h, oh, a["align_corners"]),
            bilinear_matrix(w, ow, a["align_corners"]),
            "bilinear",
        )
    elif n.op == "avg_pool2d" and not a["ceil_mode"]:
        (kh, kw), (sh, sw), (ph, pw) = a["kernel_size"], a["stride"], a["padding"]
        cip = a["count_include_pad"]
        rows, cols, kind = avg_pool_matrix(h, kh, sh, ph, cip), avg_pool_matrix(w, kw, sw, pw, cip), "avg_pool"
    else:
        return None
    return dataclasses.replace(
        n, op="resample", attrs={"kind": kind, "program": program}, params={"rows": rows, "cols": cols}
    )


def _cost(n: Node, in_shape: tuple[int, ...], target: Target) -> float:
    return op_cost(n, _PLAN, target, [Operand(in_shape, "bfloat16", DRAM_INTERLEAVED)]).total_us


def pool_halo_fits(n: Node, in_shape: tuple[int, ...], target: Target) -> bool:
    """Whether ttnn's pool can hold the halo of its windows in L1 on height shards of every core with
    some width slicing (memory planning's pool modes); a 32x64 window over 2048 channels (~9 MB per
    core at best on 110 cores) cannot."""
    b, c, h, w = in_shape
    a = n.attrs
    k = 1
    while k <= n.out.shape[3]:
        halo = cb_model.halo_bytes(
            batch=b,
            input_hw=(h, w),
            channels=c,
            kernel_size=a["kernel_size"],
            stride=a["stride"],
            padding=a["padding"],
            dilation=(1, 1),
            shard_layout="HEIGHT_SHARDED",
            grid=target.grid,
            num_cores=target.num_cores,
            dtype="bfloat16",
            num_slices=k,
        )
        if halo < target.l1_unreserved_per_core:
            return True
        k *= 2
    return False


def resample(graph: Graph, target: Target, overrides: Overrides | None = None) -> Graph:
    """Also applies the overrides' op choices: `upsample: nearest` / `matmuls` / `matmuls_multicast` (pinned)."""
    shapes = {n.name: tuple(n.out.shape) for n in graph}
    nodes = []
    for n in graph:
        pin = overrides.for_node(n) if overrides and n.op == "upsample" else None
        if pin and pin.upsample == "nearest":
            n = dataclasses.replace(n, attrs={**n.attrs, "mode": "nearest"})
        elif pin and pin.upsample in ("matmuls", "matmuls_multicast"):
            r = as_resample(n, shapes[n.inputs[0]], "multicast" if pin.upsample == "matmuls_multicast" else "one_row")
            if r is None:
                raise UserError(f"override of {n.name!r}: upsample matmuls needs a bilinear upsample")
            n = r
        elif n.op in ("avg_pool2d", "upsample"):
            in_shape = shapes[n.inputs[0]]
            r = as_resample(n, in_shape)
            illegal = n.op == "avg_pool2d" and not pool_halo_fits(n, in_shape, target)
            if r is not None and (illegal or _cost(r, in_shape, target) < _cost(n, in_shape, target)):
                n = r
        nodes.append(n)
    return graph.replace_nodes(nodes)
