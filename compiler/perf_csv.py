"""Per-op times in the CSV format of tt-metal's device profiler (`ops_perf_results_*.csv`), the
file `tt-perf-report` reads: the cost model's times written as one (`<variant>.ops_perf_modeled.csv`
beside the plan report), and a profiled run's file read back per layer to compare with the model.

Layers are delimited the way a profiled run marks them: a signpost row (OP TYPE "signpost", OP CODE
the layer's plan name) before each layer's device ops; tt-perf-report lists signposts in its table.
The program itself is signposted first and last (PROGRAM): tt-perf-report's default view starts at
the first row named like the last signpost, so it shows the whole program, not only the last layer.
A modeled layer is then up to two device rows: its moves (spills and reshards before the op, one
"ReshardDeviceOperation" row with their modeled time) and the op itself, whose DEVICE KERNEL
DURATION is the model's overlapped compute and data movement and whose OP TO OP LATENCY is the
model's per-program dispatch time; the rows of a layer add up to its modeled time. Conv rows carry
the shape, window and fidelity columns tt-perf-report needs to compute their FLOP rate.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from converter.ir import Graph
from converter.ops import Cost, op_kind
from hardware.targets import Target
from passes import cost_model
from passes.plan import DRAM_INTERLEAVED, Placement, output_of, plan_of

# tt-metal's device operation (the profiler's OP CODE) each IR op runs as.
DEVICE_OPS = {
    "conv2d": "Conv2dDeviceOperation",
    "add": "BinaryNgDeviceOperation",
    "mul_scalar": "BinaryNgDeviceOperation",
    "channel_affine": "BinaryNgDeviceOperation",
    "batch_norm": "BatchNormOperation",
    "relu": "UnaryDeviceOperation",
    "upsample": "UpsampleOperation",
    "max_pool2d": "Pool2DDeviceOperation",
    "avg_pool2d": "Pool2DDeviceOperation",
    "global_avg_pool2d": "ReduceDeviceOperation",
    "concat": "ConcatDeviceOperation",
    "resample": "MatmulDeviceOperation",  # its two interpolation matmuls (between permutes and layout changes)
}
MOVES_OP = "ReshardDeviceOperation"
COLUMNS = (
    "OP CODE",
    "OP TYPE",
    "GLOBAL CALL COUNT",
    "DEVICE ID",
    "DEVICE ARCH",
    "AVAILABLE WORKER CORE COUNT",
    "CORE COUNT",
    "ATTRIBUTES",
    "MATH FIDELITY",
    "DEVICE KERNEL DURATION [ns]",
    "OP TO OP LATENCY [ns]",
    "INPUT_0_X_PAD[LOGICAL]",
    "INPUT_0_DATATYPE",
    "INPUT_0_MEMORY",
    "INPUT_1_X_PAD[LOGICAL]",
    "INPUT_1_DATATYPE",
    "INPUT_1_MEMORY",
    "OUTPUT_0_Y_PAD[LOGICAL]",
    "OUTPUT_0_DATATYPE",
    "OUTPUT_0_MEMORY",
)
SIGNPOST, DEVICE = "signpost", "tt_dnn_device"
PROGRAM = "program"  # the signpost around all layers (no layer of the IR has this name)
_DRAM = DRAM_INTERLEAVED


def csv_name(variant: str) -> str:
    """The modeled CSV's file name beside the plan report (tt-perf-report takes any name)."""
    return f"{variant}.ops_perf_modeled.csv"


def _memory(p: Placement | None) -> str:
    p = p or _DRAM
    return f"DEV_0_{p.buffer}_{p.layout}"


def _ns(us: float) -> int:
    return round(us * 1000)


def modeled_csv(graph: Graph, target: Target) -> str:
    """The cost model's per-layer times of a planned graph as a profiler CSV (deterministic text)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0

    def row(**cells) -> None:
        nonlocal count
        count += 1
        writer.writerow(
            {
                "GLOBAL CALL COUNT": count,
                "DEVICE ID": 0,
                "DEVICE ARCH": target.arch,
                "AVAILABLE WORKER CORE COUNT": target.num_cores,
                **cells,
            }
        )

    row(**{"OP CODE": PROGRAM, "OP TYPE": SIGNPOST})
    for node, cost, operands in cost_model.walk(graph, target):
        plan = plan_of(node)
        row(**{"OP CODE": node.name, "OP TYPE": SIGNPOST})
        if cost.reshard_us:
            row(
                **{
                    "OP CODE": MOVES_OP,
                    "OP TYPE": DEVICE,
                    "DEVICE KERNEL DURATION [ns]": _ns(cost.reshard_us),
                    "OP TO OP LATENCY [ns]": 0,
                }
            )
        own = cost.total_us - cost.reshard_us - cost.dispatch_us
        cells = {
            "OP CODE": DEVICE_OPS[node.op],
            "OP TYPE": DEVICE,
            "CORE COUNT": cost.cores,
            "MATH FIDELITY": plan.math_fidelity,
            "DEVICE KERNEL DURATION [ns]": _ns(own),
            "OP TO OP LATENCY [ns]": _ns(cost.dispatch_us),
            "INPUT_0_DATATYPE": operands[0].dtype.upper(),
            "INPUT_0_MEMORY": _memory(operands[0].placement),
            "OUTPUT_0_DATATYPE": plan.dtype.upper(),
            "OUTPUT_0_MEMORY": _memory(output_of(node)),
        }
        if op_kind(node).cost is Cost.CONV:  # weights are prepared in DRAM: [1, 1, Cin/groups*kh*kw, Cout]
            n, c, h, w = node.out.shape
            k = node.attrs["kernel_size"]
            kh, kw = (k, k) if isinstance(k, int) else k
            cin = operands[0].shape[1]
            cells.update(
                {
                    "ATTRIBUTES": f"window_hw=({kh};{kw}); groups={node.attrs['groups']}",
                    "INPUT_0_X_PAD[LOGICAL]": f"{cin}[{cin}]",
                    "INPUT_1_X_PAD[LOGICAL]": f"{c}[{c}]",
                    "INPUT_1_DATATYPE": (plan.weights_dtype or "bfloat16").upper(),
                    "INPUT_1_MEMORY": _memory(_DRAM),
                    "OUTPUT_0_Y_PAD[LOGICAL]": f"{n * h * w}[{n * h * w}]",
                }
            )
        row(**cells)
    row(**{"OP CODE": PROGRAM, "OP TYPE": SIGNPOST})
    return out.getvalue()


@dataclass(frozen=True)
class LayerTime:
    layer: str  # the signpost's name
    ops: tuple[str, ...]  # OP CODE of each device row
    kernel_ns: int  # sum of DEVICE KERNEL DURATION [ns]
    gap_ns: int  # sum of OP TO OP LATENCY [ns]

    @property
    def total_us(self) -> float:
        return (self.kernel_ns + self.gap_ns) / 1000


def _int(cell: str | None) -> int:
    try:
        return round(float(cell)) if cell not in (None, "") else 0
    except ValueError:
        return 0


def layer_times(rows: Iterable[dict[str, str]], names: Collection[str] | None = None) -> list[LayerTime]:
    """Device rows grouped by the signpost before them; a signpost repeating the one before (a layer's
    several ttnn calls) continues its layer. With `names` (the plan's layers), a signpost naming no
    layer (a move or reallocation statement) starts rows that join the next named layer, as the plan
    costs moves with the op they precede. Rows before the first signpost, and host ops, belong to no
    layer; a signpost with no device rows after it (our PROGRAM) is no layer."""
    layers: list[LayerTime] = []
    group: list[dict[str, str]] | None = None  # rows of the open group; None before the first signpost
    name: str | None = None  # its layer; None while its rows wait for the next named layer

    def close() -> None:
        if group and name is not None:
            layers.append(
                LayerTime(
                    name,
                    tuple(r["OP CODE"] for r in group),
                    sum(_int(r.get("DEVICE KERNEL DURATION [ns]")) for r in group),
                    sum(_int(r.get("OP TO OP LATENCY [ns]")) for r in group),
                )
            )

    for r in rows:
        if r.get("OP TYPE") == SIGNPOST:
            label = r["OP CODE"]
            if names is not None and label not in names:
                if group is None or name is not None:
                    close()
                    group, name = [], None
            elif label != name:
                if name is not None:
                    close()
                    group = []
                group, name = group if group is not None else [], label
        elif r.get("OP TYPE") == DEVICE and group is not None:
            group.append(r)
    close()
    return layers


def read_layer_times(path: Path, names: Collection[str] | None = None) -> list[LayerTime]:
    """A profiler CSV (or ours) read back per layer (see `layer_times`)."""
    with open(path, newline="") as f:
        return layer_times(csv.DictReader(f), names)
