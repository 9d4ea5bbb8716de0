"""Calibration error of the planner's L1 model per op kind, on the committed programs.

Each variant as `pdl-convert` plans it for blackhole-20 (the committed generated/ modules) runs once through real
ttnn 0.81.1 on a mock device
in NO_DISPATCH mode; each op's planned per-core CB, op-owned L1 and peak (passes/l1_sim) is compared
with what real ttnn allocated (runtime/l1_calibration.py). Prints, per op kind, how many ops are
exact, high or low, and the error's range; then every op off by more than 2% or low.

Usage: .venv/bin/python benchmarks/l1_calibration.py   (about 3 minutes)
"""

from __future__ import annotations

import concurrent.futures
import tempfile
from pathlib import Path

from compiler.cli import plan_variant
from converter.model import VARIANTS
from hardware.targets import DEFAULT_L1_SMALL_SIZE, get_target
from runtime.l1_calibration import METRICS, compare, distribution
from runtime.ttnn_mock import check_module

TARGET = "blackhole-20"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pdl2ttnn-l1-") as tmp:
        planned = {v: plan_variant(v, TARGET) for v in VARIANTS}
        for v in VARIANTS:  # (the committed module when generated/ is up to date)
            (Path(tmp) / f"{v}.py").write_text(planned[v].module)
        with concurrent.futures.ThreadPoolExecutor(len(VARIANTS)) as pool:
            checks = {v: pool.submit(check_module, Path(tmp) / f"{v}.py", TARGET, "no_dispatch") for v in VARIANTS}
        ops = []
        for v in VARIANTS:
            check = checks[v].result()
            assert check.accepted, check.verdict()
            ops += compare(planned[v].graph, check, get_target(TARGET), DEFAULT_L1_SMALL_SIZE)
    print(f"{len(ops)} ops of {', '.join(VARIANTS)} on {TARGET}")
    print("\n".join(distribution(ops)))
    for o in ops:
        for m in METRICS:
            e = o.error(m)
            if e < 0 or e > 0.02:
                print(f"  {o.kind:16s} {m:5s} real {o.real[m]:8d} model {o.model[m]:8d} ({e:+.2%}) {o.name}")


if __name__ == "__main__":
    main()
