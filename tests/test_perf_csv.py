"""compiler/perf_csv.py: the cost model's per-op times as a profiler CSV, and a profiler CSV read back
per layer (tt-perf-report itself reads ours in tests/test_ttnn_tools.py)."""

from __future__ import annotations

import csv
import io
import re
import subprocess

from compiler.perf_csv import DEVICE_OPS, MOVES_OP, layer_times, modeled_csv
from converter.ops import REGISTRY, Cost
from hardware.targets import get_target
from passes import cost_model
from passes.pipeline import plan_graph

# What a device run under `python -m tracy -r -p` with `ttnn_mock check --signposts` writes (columns
# cut down): weight preparation before the first signpost, a move statement (signpost "x_moved",
# no plan layer) before conv "a", conv "a" signposted twice (two ttnn calls), a host op, then "b".
PROFILED = """OP CODE,OP TYPE,DEVICE KERNEL DURATION [ns],OP TO OP LATENCY [ns]
TilizeWithValPadding,tt_dnn_device,900,0
x_moved,signpost,,
InterleavedToShardedDeviceOperation,tt_dnn_device,1000,100
a,signpost,,
HaloDeviceOperation,tt_dnn_device,2000,200
a,signpost,,
Conv2dDeviceOperation,tt_dnn_device,30000,300
ttnn.from_torch,python_fallback,,
b,signpost,,
BinaryNgDeviceOperation,tt_dnn_device,4000,400
"""


def test_profiled_rows_are_grouped_by_layer_with_moves_joining_the_next_layer() -> None:
    layers = layer_times(csv.DictReader(io.StringIO(PROFILED)), names={"a", "b"})
    assert [(lt.layer, lt.ops, lt.kernel_ns, lt.gap_ns) for lt in layers] == [
        ("a", ("InterleavedToShardedDeviceOperation", "HaloDeviceOperation", "Conv2dDeviceOperation"), 33000, 600),
        ("b", ("BinaryNgDeviceOperation",), 4000, 400),
    ]
    assert layers[0].total_us == 33.6


def test_without_names_every_signpost_is_a_layer() -> None:
    layers = layer_times(csv.DictReader(io.StringIO(PROFILED)))
    assert [(lt.layer, lt.kernel_ns) for lt in layers] == [("x_moved", 1000), ("a", 32000), ("b", 4000)]


def test_modeled_csv_reads_back_as_the_cost_models_time_per_layer(small_graphs) -> None:
    target = get_target("blackhole-20")
    planned = plan_graph(small_graphs["panoptic_deeplab"], target)
    text = modeled_csv(planned, target)
    layers = layer_times(csv.DictReader(io.StringIO(text)))
    costs = cost_model.evaluate(planned, target).rows
    assert [lt.layer for lt in layers] == [r.name for r in costs]
    for lt, r in zip(layers, costs, strict=True):
        assert abs(lt.total_us - r.cost.total_us) < 0.002, lt.layer  # rows rounded to whole ns
        assert lt.ops[-1] == DEVICE_OPS[r.op]
        assert (lt.ops[0] == MOVES_OP) == (r.cost.reshard_us > 0)
    assert any(lt.ops[0] == MOVES_OP for lt in layers)
    assert text == modeled_csv(planned, target)  # deterministic


def test_every_device_op_of_the_compiler_has_its_profiler_op_code() -> None:
    # (batch_norm is folded before planning; a resample appears above a config's crop size only)
    assert {name for name, k in REGISTRY.items() if k.cost is not Cost.HOST} <= set(DEVICE_OPS)


def test_tt_perf_reports_default_view_shows_every_layer(small_graphs, tmp_path) -> None:
    """Without options tt-perf-report reads from the last signpost on: our CSV's last signpost is the
    program's own, so its default view holds every device op, not only the last layer's."""
    from tests.test_ttnn_tools import tool

    target = get_target("blackhole-20")
    text = modeled_csv(plan_graph(small_graphs["deeplab_v3_plus"], target), target)
    (tmp_path / "ops.csv").write_text(text)
    result = subprocess.run(
        [str(tool("perf-report", "tt-perf-report")), str(tmp_path / "ops.csv"), "--no-color", "--no-advice"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    device_rows = sum(1 for r in csv.DictReader(io.StringIO(text)) if r["OP TYPE"] == "tt_dnn_device")
    total = re.search(r"(\d+) device ops, 0 host ops", result.stdout)
    assert total and int(total.group(1)) == device_rows > 50, result.stdout[-3000:]
