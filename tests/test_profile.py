"""Measured device time against the model: pdl-convert --profile (compiler/profile.py) and
benchmarks/calibrate.py --measured, on a hand-written profiler CSV (tests/data: the numbers were typed,
not produced by the cost model; the device run itself is tests/test_ttnn_tools.py's device test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import calibrate
from compiler.perf_csv import csv_name, read_layer_times
from compiler.profile import measured_vs_modeled
from runtime.ttnn_host import tt_device_present

ROOT = Path(__file__).resolve().parent.parent
# DeepLabV3+ at 512x1024 on blackhole-20 as tt-metal's profiler writes it (signposts by runtime.ttnn_mock
# check --signposts): rows before the first signpost, a Halo before 3x3 convs, reshards, host rows.
PROFILED = ROOT / "tests" / "data" / "ops_perf_results_deeplab_v3_plus_blackhole20.csv"
TYPED_KERNEL_MS = 36.3248  # the typed kernel durations of the layers summed (awk, not our reader)


def test_measured_vs_modeled_has_one_line_per_layer_and_the_totals() -> None:
    modeled = read_layer_times(ROOT / "generated" / csv_name("deeplab_v3_plus"))
    measured = read_layer_times(PROFILED, {m.layer for m in modeled})
    lines = measured_vs_modeled(modeled, measured)
    assert len(lines) == len(modeled) + 2  # column heads, layers, totals
    stem = next(line for line in lines if line.split()[0] == "backbone.stem.conv1")
    assert stem.split()[3] == "1575.2"  # Halo 95.0 + Conv2d 1480.2 us, as typed
    assert stem.split()[-1] == "2"  # two device ops
    total = re.search(r"measured [0-9.]+ ms \(device kernels ([0-9.]+) ms\)", lines[-1])
    assert total and float(total[1]) == pytest.approx(TYPED_KERNEL_MS, abs=5e-4)


def test_a_missing_layer_is_named() -> None:
    modeled = read_layer_times(ROOT / "generated" / csv_name("deeplab_v3_plus"))
    measured = [m for m in read_layer_times(PROFILED, {m.layer for m in modeled}) if m.layer != "sem_seg_head.head.1"]
    line = next(line for line in measured_vs_modeled(modeled, measured) if line.split()[0] == "sem_seg_head.head.1")
    assert line.split()[2] == "missing"


@pytest.mark.skipif(tt_device_present(), reason="a device is here: --profile would run")
def test_profile_without_a_device_is_one_line_exit_2(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "compiler.cli", "--profile", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "pdl-convert: error: --profile runs the module under tt-metal's device profiler, and no Tenstorrent "
        "device is here (/dev/tenstorrent is missing or empty); run it on a machine with one, or drop --profile\n"
    )
    assert not (tmp_path / "out").exists()


def test_calibrate_refits_with_a_profiled_run_and_prints_the_errors(capsys) -> None:
    assert calibrate.main(["--measured", str(PROFILED), "--states", "S4", "--no-loo"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"P1: our default plan profiled, {PROFILED}"
    fitted = re.search(r"^fitted on S4, P1: (.*)$", out, re.M)
    assert fitted, out
    row = re.search(r"^P1 +ours +blackhole-20 +deeplab_v3_plus +([0-9.]+) +([0-9.]+) +([+-][0-9.]+)% .*fit$", out, re.M)
    assert row, out
    measured, modeled, error = float(row[1]), float(row[2]), float(row[3])
    assert measured == pytest.approx(TYPED_KERNEL_MS, abs=0.005)
    assert error == pytest.approx((modeled / measured - 1) * 100, abs=0.06)
    assert "P1 (deeplab_v3_plus on blackhole-20), per layer against the refitted model:" in out
    # without the profiled run the same fit lands elsewhere: the run is fitted on
    assert calibrate.main(["--states", "S4", "--no-loo"]) == 0
    alone = re.search(r"^fitted on S4: (.*)$", capsys.readouterr().out, re.M)
    assert alone and alone[1] != fitted[1]


def test_calibrate_refuses_a_profile_of_another_machine(tmp_path, capsys) -> None:
    text = PROFILED.read_text().replace(",BLACKHOLE,20,", ",WORMHOLE_B0,56,")
    (tmp_path / "other.csv").write_text(text)
    assert calibrate.main(["--measured", str(tmp_path / "other.csv"), "--states", "S4"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("calibrate: error: --measured ") and "no single-chip target has DEVICE ARCH 'wormhole_b0'" in err
    )
    assert err.count("\n") == 1
