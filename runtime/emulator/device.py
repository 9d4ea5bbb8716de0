"""The emulated device: a target's core grid, the tensors on it, its command queues and traces.

Numerics only: no L1 allocator, circular buffers or out-of-memory checks (real ttnn on a mock device,
runtime/ttnn_mock.py, judges memory). What real ttnn also rejects and the values depend on is checked:
closed devices, deallocated inputs, shard specs that do not fit the tensor or the grid, bfloat8_b
outside TILE layout.

Command queues (`Queues`): commands run at once, in program order, so a program that forgets an event
would still compute right here; instead each buffer remembers which queue last wrote and read it, and a
read, write or program on another queue that did not wait for an event recorded after that access is
refused as the race it is on a device. Programs obey ttnn's ownership rule: after a program on one
queue, a program on another needs a wait for an event the owner recorded after its last program.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from hardware.targets import Target
from runtime.emulator import dtypes
from runtime.emulator.tensor import TILE, Buffer, Tensor, padded_shape


@dataclass
class TraceStep:
    """One op recorded during trace capture: re-run `compute` on the inputs' current values."""

    compute: Callable[..., torch.Tensor | Sequence[torch.Tensor]]
    inputs: list[Tensor]
    outputs: list[Tensor]


@dataclass
class Trace:
    steps: list[TraceStep] = field(default_factory=list)
    complete: bool = False


CURRENT_CQ = [0]  # the queue ops go to: ttnn.command_queue(cq_id) sets it (runtime/emulator/mesh.py)


@dataclass(frozen=True)
class Event:
    """What ttnn.record_event returns: the queue and how many commands it had issued."""

    cq: int
    seq: int
    queues: Queues = field(compare=False, repr=False)


class Queues:
    """The command queues of one chip: ordering between them exists only through events."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.seq = [0] * count  # commands issued per queue
        self.waited = [[0] * count for _ in range(count)]  # waited[q][p]: p's commands q has waited for
        self.owner: int | None = None  # the queue whose programs hold the (only) sub-device
        self.owner_last = 0  # the owner's seq at its last program

    def check(self, cq: int) -> int:
        if not 0 <= cq < self.count:
            raise RuntimeError(
                f"TT_FATAL: command queue {cq} does not exist: the device was opened with "
                f"num_command_queues={self.count}"
            )
        return cq

    def record(self, cq: int) -> Event:
        return Event(self.check(cq), self.seq[cq], self)

    def wait(self, cq: int, event: Event) -> None:
        self.check(cq)
        self.waited[cq][event.cq] = max(self.waited[cq][event.cq], event.seq)

    def _ordered(self, cq: int, other: int, seq: int) -> bool:
        return other == cq or self.waited[cq][other] >= seq

    def _command(self, cq: int, reads: Sequence[Buffer], write: Buffer | None) -> None:
        self.seq[cq] += 1
        for b in reads:
            if b.written is not None and not self._ordered(cq, *b.written):
                raise RuntimeError(
                    f"emulator: a command on cq {cq} reads a buffer written on cq {b.written[0]} without waiting "
                    "for an event recorded after that write (ttnn.wait_for_event): a race on a device"
                )
            b.reads[cq] = self.seq[cq]
        if write is not None:
            for other, seq in [*write.reads.items(), *([write.written] if write.written else [])]:
                if not self._ordered(cq, other, seq):
                    raise RuntimeError(
                        f"emulator: a write on cq {cq} overwrites a buffer cq {other} still uses, without "
                        "waiting for an event recorded after that use (ttnn.wait_for_event): a race on a device"
                    )
            write.written = (cq, self.seq[cq])

    def program(self, reads: Sequence[Buffer]) -> None:
        """An op (or a trace replay) on the current queue reading `reads`."""
        cq = self.check(CURRENT_CQ[0])
        if self.owner not in (None, cq) and self.waited[cq][self.owner] < self.owner_last:
            raise RuntimeError(
                f"TT_FATAL: Sub device id 0 currently in use by cq {self.owner}. Can't enqueue program from "
                f"cq {cq}. Finish or wait for an event to transfer ownership."
            )
        self._command(cq, reads, None)
        self.owner, self.owner_last = cq, self.seq[cq]

    def write(self, cq: int, buffer: Buffer) -> None:
        """A host-to-device write on `cq` (no program: needs no ownership)."""
        self._command(self.check(cq), (), buffer)

    def read(self, cq: int, buffer: Buffer) -> None:
        """A device-to-host read on `cq`."""
        self._command(self.check(cq), (buffer,), None)


class EmuDevice:
    """What `ttnn.open_device` returns in the emulator."""

    def __init__(
        self, ttnn, target: Target, *, device_id: int, trace_region_size: int, num_command_queues: int
    ) -> None:
        self._ttnn = ttnn
        self.target = target
        self.device_id = device_id
        self.trace_region_size = trace_region_size
        self.num_command_queues = num_command_queues
        self.queues = Queues(num_command_queues)
        self.closed = False
        self._traces: dict[int, Trace] = {}
        self._capturing: int | None = None
        self._trace_ids = itertools.count()

    # --- real MeshDevice methods a program may call -------------------------------------------------
    def compute_with_storage_grid_size(self):
        return self._ttnn.CoreCoord(*self.target.grid)

    def arch(self):
        arch = self._ttnn.device.Arch
        return arch.BLACKHOLE if self.target.arch == "blackhole" else arch.WORMHOLE_B0

    def id(self) -> int:
        return self.device_id

    def get_num_devices(self) -> int:
        return 1

    def enable_program_cache(self) -> None:
        pass

    def disable_and_clear_program_cache(self) -> None:
        pass

    def clear_program_cache(self) -> None:
        pass

    # --- tensors ----------------------------------------------------------------------------------
    def check_open(self) -> None:
        if self.closed:
            raise RuntimeError("Device is closed: open it again with ttnn.open_device before using it")

    def new_tensor(self, data: torch.Tensor, dtype, layout, memory_config, rounded: bool = False) -> Tensor:
        """A device tensor holding `data` rounded to `dtype` (`rounded`: `data` already holds `dtype` values)."""
        self.check_open()
        ttnn = self._ttnn
        if dtype == ttnn.bfloat8_b and layout != ttnn.TILE_LAYOUT:
            raise RuntimeError("TT_FATAL: Layout must be Layout::TILE for bfloat8_b or bfloat4_b!")
        self.validate_memory_config(tuple(data.shape), layout, memory_config)
        cq = CURRENT_CQ[0]
        buffer = Buffer(written=(cq, self.queues.seq[cq]) if cq < self.queues.count else None)
        return Tensor(
            ttnn, data if rounded else dtypes.round_to(data, dtype), dtype, layout, memory_config, self, buffer
        )

    def view(self, tensor: Tensor, data: torch.Tensor, memory_config=None) -> Tensor:
        """A tensor sharing `tensor`'s buffer (reshape views)."""
        return Tensor(
            self._ttnn, data, tensor.dtype, tensor.layout, memory_config or tensor.memory_config(), self, tensor._buffer
        )

    def _deallocate(self, tensor: Tensor) -> None:
        if tensor._buffer is not None:
            tensor._buffer.allocated = False

    def validate_memory_config(self, shape: tuple[int, ...], layout, memory_config) -> None:
        """Reject shard specs that the real tensor constructor rejects (shape, tile alignment, grid)."""
        ttnn = self._ttnn
        if not memory_config.is_sharded():
            return
        spec = memory_config.shard_spec
        if spec is None:
            raise RuntimeError("TT_FATAL: Sharded memory config needs a shard_spec (ttnn.ShardSpec) for this tensor")
        if memory_config.buffer_type != ttnn.BufferType.L1:
            raise RuntimeError("emulator: only L1 sharding is emulated; use an L1 buffer type for sharded tensors")
        gx, gy = self.target.grid
        box = spec.grid.bounding_box()
        if box.end.x >= gx or box.end.y >= gy:
            raise RuntimeError(
                f"TT_FATAL: shard grid {spec.grid} does not fit the device compute grid {gx}x{gy} of {self.target.name}"
            )
        sh, sw = spec.shape
        tile = layout == ttnn.TILE_LAYOUT
        if tile and (sh % TILE or sw % TILE):
            raise RuntimeError(
                f"TT_FATAL: Shard shape {[sh, sw]} must be a multiple of tile shape [32, 32] for TILE layout"
            )
        pshape = padded_shape(shape, tile)
        height = 1
        for d in pshape[:-1]:
            height *= d
        width = pshape[-1]
        cores = spec.grid.num_cores()
        mls = memory_config.memory_layout
        if mls == ttnn.TensorMemoryLayout.HEIGHT_SHARDED:
            if sw != width:
                raise RuntimeError(f"TT_FATAL: Shard width {sw} must match physical width {width} for height sharding")
            if sh * cores < height:
                raise RuntimeError(f"TT_FATAL: {cores} shards of height {sh} cannot hold physical height {height}")
        elif mls == ttnn.TensorMemoryLayout.WIDTH_SHARDED:
            if sh != height:
                raise RuntimeError(
                    f"TT_FATAL: Shard height {sh} must match physical height {height} for width sharding"
                )
            if sw * cores < width:
                raise RuntimeError(f"TT_FATAL: {cores} shards of width {sw} cannot hold physical width {width}")
        elif mls == ttnn.TensorMemoryLayout.BLOCK_SHARDED:
            nx, ny = box.end.x - box.start.x + 1, box.end.y - box.start.y + 1
            if spec.orientation == ttnn.ShardOrientation.COL_MAJOR:
                nx, ny = ny, nx
            if sh * ny < height or sw * nx < width:
                raise RuntimeError(
                    f"TT_FATAL: block shards {[sh, sw]} on a {nx}x{ny} grid cannot hold physical shape "
                    f"[{height}, {width}]"
                )

    # --- traces -----------------------------------------------------------------------------------
    def record_step(self, compute, inputs: list[Tensor], outputs: list[Tensor]) -> None:
        if self._capturing is not None:
            self._traces[self._capturing].steps.append(TraceStep(compute, list(inputs), list(outputs)))

    @property
    def capturing(self) -> bool:
        return self._capturing is not None

    def begin_trace(self) -> int:
        self.check_open()
        if self.trace_region_size <= 0:
            raise RuntimeError(
                "TT_FATAL: Creating trace buffers on device 0, but only 0B is allocated for trace region: open the "
                "device with trace_region_size > 0"
            )
        if self._capturing is not None:
            raise RuntimeError("TT_FATAL: a trace capture is already in progress")
        tid = next(self._trace_ids)
        self._traces[tid] = Trace()
        self._capturing = tid
        return tid

    def end_trace(self, tid: int) -> None:
        if self._capturing != tid:
            raise RuntimeError(f"TT_FATAL: trace {tid} is not being captured")
        self._traces[tid].complete = True
        self._capturing = None

    def execute_trace(self, tid: int) -> None:
        trace = self._traces.get(tid)
        if trace is None or not trace.complete:
            raise RuntimeError(f"TT_FATAL: trace {tid} was not captured (or was released)")
        self.queues.program([t._buffer for step in trace.steps for t in step.inputs if t._buffer is not None])
        for step in trace.steps:
            result = step.compute(*[t._data for t in step.inputs])
            results = result if isinstance(result, (tuple, list)) else (result,)
            for out, value in zip(step.outputs, results, strict=True):
                out._data = dtypes.round_to(value, out.dtype)

    def release_trace(self, tid: int) -> None:
        if self._traces.pop(tid, None) is None:
            raise RuntimeError(f"TT_FATAL: trace {tid} does not exist")

    def close(self) -> None:
        self.closed = True


def require_device_tensor(name: str, *tensors: Tensor) -> EmuDevice:
    """The device all inputs live on; errors shaped like ttnn's for host or deallocated inputs."""
    device = None
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}: expected a ttnn.Tensor, got {type(t).__name__}")
        if t._device is None:
            raise RuntimeError(
                f"TT_FATAL: {name}: input tensor must be on device (storage_type() == StorageType::DEVICE); "
                "move it with ttnn.to_device"
            )
        if not t.is_allocated():
            raise RuntimeError(f"TT_FATAL: {name}: input tensor is not allocated (it was deallocated)")
        device = t._device
    if device is None:
        raise TypeError(f"{name}: called without a device tensor")
    device.check_open()
    device.queues.program([t._buffer for t in tensors])
    return device


__all__ = ["EmuDevice", "require_device_tensor"]
