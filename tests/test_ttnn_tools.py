"""Tenstorrent's own tools read what pdl-convert writes, as a user runs them.

- `pdl-convert --ttnn-report DIR`: the report database real ttnn 0.81.1 writes while running the
  generated module on a mock device holds the program's ops and its L1 buffers per core;
  ttnn-visualizer 0.108.0 serves it (loopback only) and its pages, loaded in Debian's headless
  Chromium, list our ops (screenshots in the test's tmp directory).
- `<variant>.ops_perf_modeled.csv`: tt-perf-report 1.4.1 prints our layers and modeled times.
- On a device (`-m device`): a profiled run's per-op CSV read back per layer against the model.
The tools live in their own venvs (.venv-tools/, built by scripts/setup.sh: they need numpy 2).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from compiler.perf_csv import csv_name, read_layer_times
from compiler.profile import measured_vs_modeled, profile_module
from hardware.targets import get_target
from runtime.ttnn_host import tt_device_present

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".venv-tools"
SMALL = "128x256"
DL3 = "deeplab_v3_plus"
L1 = 1  # ttnn BufferType: DRAM 0, L1 1, SYSTEM_MEMORY 2, L1_SMALL 3


def tool(venv: str, name: str) -> Path:
    path = TOOLS / venv / "bin" / name
    assert path.is_file(), f"{path} is missing: run scripts/setup.sh"
    return path


@pytest.fixture(scope="module")
def reported(small_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One conversion with --ttnn-report: (--out, the variant's ttnn report directory)."""
    base = tmp_path_factory.mktemp("tools")
    out, report = base / "out", base / "ttnn-report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "compiler.cli",
            "--config",
            str(small_config),
            "--input-size",
            SMALL,
            "--variant",
            DL3,
            "--out",
            str(out),
            "--ttnn-report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{DL3}: real ttnn: accepted" in result.stdout
    return out, report / DL3


def plan_layers(out: Path) -> list[tuple[str, str, float]]:
    """(name, op, modeled us) of each row of the plan report's layer table."""
    rows = re.findall(
        r"^\| \d+ \| (\S+) \| [^|]* \| (\w+) \|.* \| ([\d.]+) \|$", (out / f"{DL3}.plan.md").read_text(), re.M
    )
    return [(name, op, float(us)) for name, op, us in rows]


def test_ttnn_report_holds_the_programs_ops_and_l1_buffers_per_core(reported) -> None:
    out, report = reported
    assert sorted(p.name for p in report.iterdir()) == ["cluster_descriptor.yaml", "config.json", "db.sqlite"]
    config = json.loads((report / "config.json").read_text())
    assert config["enable_detailed_buffer_report"] and not config["enable_fast_runtime_mode"]
    db = sqlite3.connect(report / "db.sqlite")
    ops = dict(db.execute("SELECT name, COUNT(*) FROM operations GROUP BY name").fetchall())
    convs = sum(op == "conv2d" for _, op, _ in plan_layers(out))
    assert ops["ttnn.conv2d"] == convs == 70  # Detectron2's DeepLabV3+ R-52: 70 convs, every one run
    assert {"ttnn.upsample", "ttnn.concat", "ttnn.max_pool2d", "ttnn.deallocate"} <= set(ops)
    target = get_target("blackhole-20")
    ((banks, bank_size),) = db.execute("SELECT DISTINCT l1_num_banks, l1_bank_size FROM devices").fetchall()
    assert banks == target.num_cores
    # L1 buffers placed on every core of the 5x4 grid, never beyond a core's L1 bank.
    cores = db.execute(
        "SELECT COUNT(DISTINCT core_x || ',' || core_y) FROM buffer_chunks WHERE buffer_type = ?", (L1,)
    ).fetchone()[0]
    assert cores == target.num_cores
    per_core = db.execute(
        "SELECT MAX(used) FROM (SELECT SUM(chunk_size) AS used FROM buffer_chunks "
        "WHERE buffer_type = ? GROUP BY operation_id, core_x, core_y)",
        (L1,),
    ).fetchone()[0]
    assert 0 < per_core <= bank_size
    # Every conv left an output tensor on the device that the report links to its op.
    conv_outputs = db.execute(
        "SELECT COUNT(DISTINCT o.operation_id) FROM output_tensors o JOIN operations p "
        "ON o.operation_id = p.operation_id WHERE p.name = 'ttnn.conv2d'"
    ).fetchone()[0]
    assert conv_outputs == convs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, payload: dict | None = None) -> bytes:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=10) as response:
        return response.read()


def test_ttnn_visualizer_serves_the_report_and_its_pages_list_our_ops(reported, tmp_path: Path) -> None:
    _, report = reported
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "APP_DATA_DIRECTORY": str(tmp_path / "app"),
        "REPORT_DATA_DIRECTORY": str(tmp_path / "data"),
        "LAUNCH_BROWSER_ON_START": "false",
        "USAGE_RECORDING_DISABLED": "true",
        "HOME": str(tmp_path),
    }
    log = (tmp_path / "server.log").open("w")  # closed when the test's tmp directory goes
    server = subprocess.Popen(
        [str(tool("visualizer", "ttnn-visualizer")), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _request(f"{base}/api/up")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        # What the visualizer's "open report" does for a local directory (and its --profiler-path).
        instance = json.loads(_request(f"{base}/api/instance/local-paths", {"profiler_path": str(report)}))[
            "instance_id"
        ]
        db = sqlite3.connect(report / "db.sqlite")
        n_ops = db.execute("SELECT COUNT(*) FROM operations").fetchone()[0]
        conv = db.execute("SELECT MIN(operation_id) FROM operations WHERE name = 'ttnn.conv2d'").fetchone()[0]
        shots = tmp_path / "screenshots"
        shots.mkdir()
        pages = subprocess.run(
            [
                str(tool("visualizer", "python")),
                str(Path(__file__).with_name("visualizer_page.py")),
                base,
                instance,
                str(shots),
                f"/operations=Showing {n_ops} operations",
                "/buffer-summary=ttnn.conv2d",
                f"/operations/{conv}={conv} ttnn.conv2d",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert pages.returncode == 0, pages.stderr[-3000:]
        text = json.loads(pages.stdout)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    # The operations list: every op of the report, ours among them.
    assert f"Showing {n_ops} operations" in text["/operations"]
    assert "ttnn.conv2d" in text["/operations"] and "ttnn.to_memory_config" in text["/operations"]
    # The L1 view over the program: buffers by operation, op by op.
    assert "Buffers by operation" in text["/buffer-summary"] and "L1" in text["/buffer-summary"]
    assert re.search(rf"\b{conv} ttnn\.conv2d\b", text["/buffer-summary"])
    # One conv's page: its L1 allocations per core and the tensors it reads and writes.
    assert f"{conv} ttnn.conv2d" in text[f"/operations/{conv}"]
    for words in ("L1 Memory", "All allocations per core", "Inputs", "Outputs", "HEIGHT_SHARDED"):
        assert words in text[f"/operations/{conv}"], words
    assert {p.name for p in shots.iterdir()} == {"buffer-summary.png", f"operations_{conv}.png", "operations.png"}


def test_tt_perf_report_prints_our_layers_and_modeled_times(reported) -> None:
    out, _ = reported
    result = subprocess.run(
        [
            str(tool("perf-report", "tt-perf-report")),
            str(out / csv_name(DL3)),
            "--ignore-signposts",
            "--no-color",
            "--no-advice",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = result.stdout
    assert "Architecture: blackhole, Worker cores: 20" in printed
    layers = plan_layers(out)
    for name, _, _ in layers:
        assert re.search(rf"🪧 {re.escape(name)}\s", printed), name
    # Detectron2's deep stem conv1 at 128x256: 3x3, stride 2, 3 -> 64 channels: 64x128 output rows,
    # reduction 3*3*3, 64 columns; tt-perf-report derives its FLOP rate from our time.
    stem = re.search(r"Conv2dDeviceOperation 8192 x 27 x 64 .*?([\d.]+) TFLOPs", printed)
    assert stem and float(stem.group(1)) > 0
    total = re.search(r"(\d+) device ops, 0 host ops, (\d+) signposts\s+([\d,]+) μs\s+([\d,]+) μs", printed)
    assert total and int(total.group(2)) == len(layers) + 2  # and the program's signpost, first and last
    device_us, gap_us = (float(total.group(k).replace(",", "")) for k in (3, 4))
    # Device time + op-to-op gaps is the modeled latency (tt-perf-report drops the first op's gap;
    # the plan report rounds each layer to 0.1 us).
    modeled_us = sum(us for _, _, us in layers)
    assert abs(device_us + gap_us - modeled_us) < 0.01 * modeled_us


@pytest.mark.device
@pytest.mark.skipif(not tt_device_present(), reason="no Tenstorrent device on this machine (/dev/tenstorrent)")
@pytest.mark.parametrize("variant", ["panoptic_deeplab", "deeplab_v3_plus"])
def test_a_profiled_device_run_against_the_model_per_layer(variant: str, tmp_path: Path) -> None:
    """The committed module run under tt-metal's profiler with a signpost per ttnn call, its
    ops_perf_results CSV read back per layer and set against the committed modeled CSV; the table
    (modeled_vs_measured.csv in tmp) is what fitting the cost model needs."""
    generated = ROOT / "generated"
    measured_csv = profile_module(generated / f"{variant}.py", get_target("blackhole-20"), tmp_path)
    assert json.loads((tmp_path / "check.json").read_text())["accepted"]
    modeled = read_layer_times(generated / csv_name(variant))
    measured = read_layer_times(measured_csv, {m.layer for m in modeled})
    assert [m.layer for m in measured] == [m.layer for m in modeled]
    lines = ["layer,modeled_us,measured_kernel_us,measured_gap_us,device_ops"]
    for mod, mea in zip(modeled, measured, strict=True):
        assert mea.kernel_ns > 0, mea.layer
        lines.append(
            f"{mod.layer},{mod.total_us:.3f},{mea.kernel_ns / 1000:.3f},{mea.gap_ns / 1000:.3f},{len(mea.ops)}"
        )
    (tmp_path / "modeled_vs_measured.csv").write_text("\n".join(lines) + "\n")
    print("\n".join(measured_vs_modeled(modeled, measured)))  # pdl-convert --profile's table
    ratio = sum(m.kernel_ns for m in measured) / 1000 / sum(m.total_us for m in modeled)
    assert 0.5 < ratio < 2.0, f"measured device kernel time / modeled latency = {ratio:.2f}"
