"""L1_SMALL still allocated after each layer of a generated module, as real ttnn 0.81.1 runs it on a
mock device of its target (NORMAL mode, program cache on, as a device runs it).

Why: ttnn keeps the config tensors of every distinct conv, pool and upsample program in L1_SMALL for
as long as the program is cached, so L1_SMALL fills layer by layer and never empties; the planner's
L1 model (passes/l1_sim.py) frees them with the op. At 1024x2048 on blackhole-p150 the 32 KB the
generated modules open the device with run out at the instance head's ASPP. This prints, per layer
where it grows, the bytes per bank allocated after the call, and real ttnn's verdict.

    python benchmarks/l1_small_growth.py MODULE.py --target blackhole-p150
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _child(module: Path, target_name: str) -> None:
    """Inside the mock-device child: wrap the check's per-call recorder to read L1_SMALL after each call."""
    from hardware.targets import get_target
    from runtime import ttnn_mock

    wrapped = ttnn_mock._Recorder.__getattr__
    last = [0]

    def getattr_reading_l1_small(self, name):
        fn = wrapped(self, name)
        if isinstance(fn, type) or not callable(fn):
            return fn

        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            finally:
                view = self._ttnn.get_memory_view(self._device, self._ttnn.BufferType.L1_SMALL)
                now = int(view.total_bytes_allocated_per_bank)
                if now != last[0]:
                    line, layer = self.where
                    print(f"{line:6d}  {layer:60.60s} {name:12.12s} {now - last[0]:+7d} {now:7d}", flush=True)
                    last[0] = now

        return call

    ttnn_mock._Recorder.__getattr__ = getattr_reading_l1_small  # type: ignore[method-assign]
    print(f"{'line':>6s}  {'layer':60s} {'ttnn call':12s} {'growth':>7s} {'L1_SMALL per bank':>7s}")
    result = ttnn_mock._run_check(module, get_target(target_name), "normal")
    print("real ttnn:", "accepted" if result.accepted else f"REJECTED at {result.layer}: {result.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", type=Path)
    parser.add_argument("--target", default="blackhole-20")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.module, args.target)
        return 0
    from runtime.ttnn_mock import run_probe

    argv = [str(Path(__file__).resolve()), str(args.module.resolve()), "--target", args.target, "--child"]
    done = run_probe(args.target, argv)
    sys.stdout.write(done.stdout)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
