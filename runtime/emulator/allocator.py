"""Device memory as tt-metal's L1 banking allocator hands it out (tt_metal/impl/allocator).

- One bank per worker core for L1 (and for L1_SMALL when `l1_small_size > 0`), one per DRAM channel.
- Lock-step allocation: a buffer reserves the same byte range in every bank of its kind, whether or
  not that bank holds pages of it (sharded buffers on 10 of 20 cores still take the range on all 20).
  So one free list per buffer kind models every bank at once.
- Interleaved buffers spread page by page round-robin over all banks: each bank needs
  ceil(pages / banks) aligned pages. Sharded buffers need one (aligned) shard per bank.
- L1 layout of a core: [0, unreserved base) firmware | L1 buffers, allocated top-down | L1_SMALL at the
  very top (`l1_small_size`, DRAM-aligned). Circular buffers of the running program grow bottom-up from
  the unreserved base and must end below the lowest L1 buffer (checked per program, like
  `Program::validate_circular_buffer_region`). DRAM buffers are allocated bottom-up.
- Allocation is first fit over address-ordered free blocks (tt-metal's FreeList default).
"""

from __future__ import annotations

from dataclasses import dataclass

from passes.l1_allocator import FreeList, align


class DeviceMemoryError(RuntimeError):
    """What ttnn raises (as RuntimeError) for out-of-memory and circular-buffer clashes."""


@dataclass
class BankManager:
    """All banks of one buffer kind ("L1", "L1_SMALL", "DRAM"), allocated in lock-step."""

    kind: str
    num_banks: int
    lo: int
    hi: int
    alignment: int
    top_down: bool

    def __post_init__(self) -> None:
        self.free_list = FreeList(self.lo, self.hi, self.top_down)

    @property
    def bank_size(self) -> int:
        return self.hi - self.lo

    def allocate(self, total_bytes: int, bytes_per_bank: int, num_banks: int | None = None) -> int:
        size = align(max(bytes_per_bank, 1), self.alignment)
        addr = self.free_list.allocate(size, self.alignment)
        if addr is None:
            blocks = self.free_list.free_blocks()
            free = sum(length for _, length in blocks)
            largest = max((length for _, length in blocks), default=0)
            raise DeviceMemoryError(
                f"Out of Memory: Not enough space to allocate {total_bytes} B {self.kind} buffer across "
                f"{num_banks or self.num_banks} banks, where each bank needs to store {size} B, but bank size is "
                f"{self.bank_size} B (allocated: {self.free_list.allocated} B, free: {free} B, "
                f"largest free block: {largest} B)"
            )
        return addr

    def release(self, addr: int) -> None:
        self.free_list.release(addr)


def bytes_per_bank_interleaved(num_pages: int, page_size: int, num_banks: int, alignment: int) -> int:
    """tt-metal's SizeBytesPerBank: whole aligned pages, round-robin over the banks."""
    return -(-num_pages // num_banks) * align(page_size, alignment)


@dataclass
class Buffer:
    """One device allocation backing a tensor (shared by views such as reshapes)."""

    kind: str  # "L1" | "L1_SMALL" | "DRAM"
    address: int
    bytes_per_bank: int
    total_bytes: int
    allocated: bool = True


@dataclass(frozen=True)
class OpMemory:
    """L1 state of one core while an op ran (lock-step, so every core alike)."""

    op: str
    cb_bytes: int  # circular buffers of the op's program(s)
    l1_buffer_bytes: int  # live L1 buffers, incl. the op's output and temporaries
    l1_small_bytes: int
    lowest_l1_address: int | None  # where the top-down L1 buffers end
    total: int  # cb + L1 + L1_SMALL bytes per core


class DeviceMemory:
    """The allocators of one emulated device, plus circular-buffer checks and peak tracking."""

    def __init__(self, *, l1_bytes: int, l1_unreserved: int, num_cores: int, l1_small_size: int,
                 dram_bytes: int, dram_banks: int, l1_alignment: int, dram_alignment: int) -> None:
        self.l1_bytes = l1_bytes
        self.unreserved_base = l1_bytes - l1_unreserved
        small = align(l1_small_size, dram_alignment)
        if small >= l1_unreserved:
            raise DeviceMemoryError("Reserved size must be less than bank size")
        self.l1_small_size = small
        self.banks = {
            "L1": BankManager("L1", num_cores, self.unreserved_base, l1_bytes - small, l1_alignment, True),
            "L1_SMALL": BankManager("L1_SMALL", num_cores, l1_bytes - small, l1_bytes, l1_alignment, True),
            "DRAM": BankManager("DRAM", dram_banks, 0, dram_bytes // dram_banks, dram_alignment, False),
        }
        self.op_log: list[OpMemory] = []

    def allocate(self, kind: str, total_bytes: int, bytes_per_bank: int, num_banks: int | None = None) -> Buffer:
        if kind == "L1_SMALL" and self.l1_small_size == 0:
            raise DeviceMemoryError(
                f"Out of Memory: Not enough space to allocate {total_bytes} B L1_SMALL buffer across "
                f"{self.banks['L1_SMALL'].num_banks} banks, where each bank needs to store {bytes_per_bank} B, "
                "but bank size is 0 B (open the device with l1_small_size > 0)"
            )
        bank = self.banks[kind]
        addr = bank.allocate(total_bytes, bytes_per_bank, num_banks)
        return Buffer(kind, addr, align(max(bytes_per_bank, 1), bank.alignment), total_bytes)

    def release(self, buffer: Buffer) -> None:
        if buffer.allocated:
            self.banks[buffer.kind].release(buffer.address)
            buffer.allocated = False

    def lowest_l1_address(self) -> int | None:
        lows = [a for a in (self.banks["L1"].free_list.lowest(), self.banks["L1_SMALL"].free_list.lowest()) if a is not None]
        return min(lows) if lows else None

    def check_circular_buffers(self, op: str, cb_bytes: int, core_range: str) -> None:
        """Raise like tt-metal when the op's static CBs overflow L1 or reach into L1 buffers."""
        end = self.unreserved_base + cb_bytes
        if end > self.l1_bytes:
            raise DeviceMemoryError(
                f"Statically allocated circular buffers on core range {core_range} grow to {end} B which is "
                f"beyond max L1 size of {self.l1_bytes} B"
            )
        lowest = self.lowest_l1_address()
        if lowest is not None and end > lowest:
            raise DeviceMemoryError(
                f"Statically allocated circular buffers in program {op} clash with L1 buffers on core range "
                f"{core_range}. L1 buffer allocated at {lowest} and static circular buffer region ends at {end}"
            )

    def record(self, op: str, cb_bytes: int) -> OpMemory:
        l1 = self.banks["L1"].free_list.allocated
        small = self.banks["L1_SMALL"].free_list.allocated
        entry = OpMemory(op, cb_bytes, l1, small, self.banks["L1"].free_list.lowest(), cb_bytes + l1 + small)
        self.op_log.append(entry)
        return entry

    def peak_l1_per_core(self) -> int:
        return max((e.total for e in self.op_log), default=0)

    def l1_in_use(self) -> int:
        return self.banks["L1"].free_list.allocated
