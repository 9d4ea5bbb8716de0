"""DRAM slicing of sliding-window ops (conv2d, pools): the op streams its DRAM input slice by slice
through L1, so only one slice's working set (input shard, halo, output shard, CBs) must fit.
With no slice count given (0), the smallest power of two that fits is used, like ttnn's auto slicing."""

from __future__ import annotations

from collections.abc import Callable

from runtime.emulator.allocator import DeviceMemoryError
from runtime.emulator.device import EmuDevice

# n -> (cb bytes, per-core L1 temporaries, [(kind, per-core bytes)] of config tensors)
WorkingSet = Callable[[int], tuple[int, list[int], list[tuple[str, int]]]]


def fit_slices(device: EmuDevice, name: str, requested: int, limit: int, working_set: WorkingSet) -> int:
    """Run the op's slices' memory checks; returns the slice count used (raises the last OOM/CB error)."""
    candidates = [requested] if requested > 0 else [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= max(limit, 1)]
    failure: DeviceMemoryError | None = None
    for n in candidates:
        cb, l1_temps, configs = working_set(n)
        try:
            with device.program(f"{name}[{n} slices]", cb) as temps:
                for kind, size in configs:
                    device.temp(temps, kind, size)
                for size in l1_temps:
                    if size:
                        device.temp(temps, "L1", size)
            return n
        except DeviceMemoryError as err:
            failure = err
    raise failure  # type: ignore[misc]
