"""`pdl-convert --profile`: a generated module run under tt-metal's device profiler, measured against
the cost model per layer.

On a device, the module runs once through `runtime.ttnn_mock check --signposts` under `python -m tracy
-r -p` (no mock environment: the real device), which signposts the layer before each ttnn call; the
profiler's `ops_perf_results_*.csv` is written beside the modeled CSV as `<variant>.ops_perf_measured.csv`
and both are read back per layer (compiler/perf_csv.py) into one table. `benchmarks/calibrate.py
--measured CSV` refits the cost model's constants with such a file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from compiler.perf_csv import LayerTime
from converter.errors import UserError
from hardware.targets import Target

ROOT = Path(__file__).resolve().parent.parent


def measured_name(variant: str) -> str:
    """The profiled run's CSV beside the modeled one (compiler/perf_csv.py: csv_name)."""
    return f"{variant}.ops_perf_measured.csv"


def profile_command(module: Path, target: Target, out: Path, result_json: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `module` once on the device under tt-metal's profiler,
    its reports under `out` (tracy's `-o`), the real-ttnn check's verdict in `result_json`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_METAL_MOCK")}
    env.update({"PYTHONPATH": str(ROOT), "TT_METAL_DEVICE_PROFILER": "1", "TRACY_NO_WEB_SERVER": "1"})
    if target.grid_override:
        env["TT_METAL_CORE_GRID_OVERRIDE_TODEPRECATE"] = target.grid_override
    argv = [sys.executable, "-m", "tracy", "-r", "-p", "-o", str(out), "-m", "runtime.ttnn_mock", "check"]
    argv += [str(module), "--target", target.name, "--json", str(result_json), "--signposts"]
    return argv, env


def profile_module(module: Path, target: Target, workdir: Path) -> Path:
    """Run `module` under the profiler (see `profile_command`); the ops_perf_results CSV it wrote."""
    argv, env = profile_command(module, target, workdir / "profile", workdir / "check.json")
    proc = subprocess.run(argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=3600)
    found = sorted((workdir / "profile").rglob("ops_perf_results_*.csv"))
    if proc.returncode != 0 or not found:
        tail = " ".join(proc.stderr.split()[-40:])
        raise RuntimeError(f"the profiled run failed (exit {proc.returncode}): {tail}")
    return found[-1]


def require_device() -> None:
    """--profile measures a device: a user error, before any work, where there is none."""
    from runtime.ttnn_host import DEVICE_NODE, tt_device_present

    if not tt_device_present():
        raise UserError(
            f"--profile runs the module under tt-metal's device profiler, and no Tenstorrent device is here "
            f"({DEVICE_NODE} is missing or empty); run it on a machine with one, or drop --profile"
        )


def measured_vs_modeled(modeled: Sequence[LayerTime], measured: Sequence[LayerTime]) -> list[str]:
    """Per layer: modeled time, measured kernel + op-to-op time, their ratio; then the totals. Layers
    are matched by name; a modeled layer the run did not signpost is named as missing."""
    by_name = {m.layer: m for m in measured}
    width = max(len(m.layer) for m in modeled)
    lines = [f"  {'layer':<{width}}  {'modeled us':>10} {'measured us':>11} {'kernel us':>9} {'ratio':>6}  device ops"]
    for mod in modeled:
        mea = by_name.get(mod.layer)
        if mea is None:
            lines.append(f"  {mod.layer:<{width}}  {mod.total_us:>10.1f} {'missing':>11}")
            continue
        ratio = mea.total_us / mod.total_us if mod.total_us else float("inf")
        lines.append(
            f"  {mod.layer:<{width}}  {mod.total_us:>10.1f} {mea.total_us:>11.1f} {mea.kernel_ns / 1000:>9.1f} "
            f"{ratio:>6.2f}  {len(mea.ops)}"
        )
    model_us = sum(m.total_us for m in modeled)
    kernel_us = sum(m.kernel_ns for m in measured) / 1000
    total_us = sum(m.total_us for m in measured)
    lines.append(
        f"  total: modeled {model_us / 1000:.3f} ms, measured {total_us / 1000:.3f} ms "
        f"(device kernels {kernel_us / 1000:.3f} ms), measured / modeled {total_us / model_us:.2f}"
    )
    return lines
