"""ANALYSIS: the address-level model of tt-metal's bank allocator, for the planner (passes/l1_sim.py).

tt-metal hands out memory in lock-step over all banks of a kind, first fit over address-ordered free
blocks (its FreeList policy), L1 from the top down and DRAM from the bottom up; an op's circular buffers
grow from the bottom of L1 and must end below the lowest L1 buffer. So whether a tensor fits depends on
where the live ones sit, not only on how many bytes are free: the planner simulates the free list
instead of summing live bytes (real ttnn on a mock device is the check: tests/test_ttnn_mock.py).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from passes.cb_model import round_up as align


@dataclass
class FreeList:
    """First-fit allocator over [lo, hi): allocated blocks kept sorted by address."""

    lo: int
    hi: int
    top_down: bool
    starts: list[int] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)

    def free_blocks(self) -> list[tuple[int, int]]:
        blocks, cursor = [], self.lo
        for start in self.starts:
            if start > cursor:
                blocks.append((cursor, start - cursor))
            cursor = start + self.sizes[start]
        if self.hi > cursor:
            blocks.append((cursor, self.hi - cursor))
        return blocks

    def allocate(self, size: int, alignment: int) -> int | None:
        blocks = self.free_blocks()
        for start, length in reversed(blocks) if self.top_down else blocks:
            if self.top_down:
                addr = (start + length - size) // alignment * alignment
                if addr >= start:
                    return self._take(addr, size)
            else:
                addr = align(start, alignment)
                if addr + size <= start + length:
                    return self._take(addr, size)
        return None

    def _take(self, addr: int, size: int) -> int:
        bisect.insort(self.starts, addr)
        self.sizes[addr] = size
        return addr

    def release(self, addr: int) -> None:
        self.starts.remove(addr)
        del self.sizes[addr]

    @property
    def allocated(self) -> int:
        return sum(self.sizes.values())

    def lowest(self) -> int | None:
        return self.starts[0] if self.starts else None

    def copy(self) -> FreeList:
        """An independent free list in the same state, for what-if placement trials."""
        return FreeList(self.lo, self.hi, self.top_down, list(self.starts), dict(self.sizes))
