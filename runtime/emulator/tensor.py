"""The emulated ttnn.Tensor: torch values plus what the device knows about them.

Values are a torch tensor of the logical shape, already rounded to the tensor's dtype (see dtypes.py).
The emulator models numerics, not device memory: a device tensor's `Buffer` only says whether it is
still allocated (real ttnn on a mock device judges L1, see runtime/ttnn_mock.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from hardware.targets import TILE


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def padded_shape(shape: tuple[int, ...], tile_layout: bool) -> tuple[int, ...]:
    if not tile_layout:
        return tuple(shape)
    s = list(shape) if len(shape) >= 2 else [1] * (2 - len(shape)) + list(shape)
    s[-1], s[-2] = round_up(s[-1], TILE), round_up(s[-2], TILE)
    return tuple(s)


@dataclass
class Buffer:
    """The device allocation behind a tensor, shared by its views (reshapes): deallocating one
    deallocates all of them. `written` / `reads`: the queue and command number of its last write and
    its last read per queue (device.Queues orders them)."""

    allocated: bool = True
    written: tuple[int, int] | None = None
    reads: dict[int, int] = field(default_factory=dict)


class Tensor:
    """Emulated ttnn.Tensor (host or device storage)."""

    def __init__(
        self, ttnn, data: torch.Tensor, dtype, layout, memory_config, device=None, buffer: Buffer | None = None
    ):
        self._ttnn = ttnn
        self._data = data
        self.dtype = dtype
        self.layout = layout
        self._memory_config = memory_config
        self._device = device
        self._buffer = buffer
        self._host_deallocated = False

    # --- what real ttnn.Tensor exposes -----------------------------------------------------------
    @property
    def shape(self):
        return self._ttnn.Shape(list(self._data.shape))

    @property
    def padded_shape(self):
        return self._ttnn.Shape(list(padded_shape(tuple(self._data.shape), self.is_tile)))

    def get_dtype(self):
        return self.dtype

    def get_layout(self):
        return self.layout

    def memory_config(self):
        return self._memory_config

    def is_sharded(self) -> bool:
        return self._memory_config.is_sharded()

    def shard_spec(self):
        return self._memory_config.shard_spec

    def device(self):
        return self._device

    def storage_type(self):
        st = self._ttnn.StorageType
        return st.DEVICE if self._device is not None else st.HOST

    def is_allocated(self) -> bool:
        if self._buffer is not None:
            return self._buffer.allocated
        return not self._host_deallocated

    def logical_volume(self) -> int:
        return math.prod(self._data.shape)

    def volume(self) -> int:
        return math.prod(padded_shape(tuple(self._data.shape), self.is_tile))

    def deallocate(self, force: bool = True) -> None:
        if self._device is not None:
            self._device._deallocate(self)
        else:
            self._host_deallocated = True

    def to_torch(self):
        return self._ttnn.to_torch(self)

    def cpu(self, blocking: bool = True):
        return self._ttnn.from_device(self, blocking)

    def reshape(self, *shape):
        return self._ttnn.reshape(self, shape[0] if len(shape) == 1 else shape)

    def __repr__(self) -> str:
        where = "DEVICE" if self._device is not None else "HOST"
        return (
            f"ttnn.Tensor(emulated, shape={list(self._data.shape)}, dtype={self.dtype}, layout={self.layout}, "
            f"storage={where}, memory_config={self._memory_config})"
        )

    # --- emulator internals --------------------------------------------------------------------
    @property
    def is_tile(self) -> bool:
        return self.layout == self._ttnn.TILE_LAYOUT

    @property
    def data(self) -> torch.Tensor:
        """Values; raises like ttnn if the tensor was deallocated."""
        if not self.is_allocated():
            raise RuntimeError("Tensor is not allocated (it was deallocated): cannot use it as an op input")
        return self._data
