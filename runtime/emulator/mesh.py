"""The emulated MeshDevice: N emulated chips, each with its own tensors, queues and traces.

A mesh tensor holds one tensor per chip (`MeshTensor.shards`). Every emulated op is applied chip by
chip (`per_chip`): the op runs once per chip on that chip's shards and device, and its results are
gathered into mesh tensors again, so a program written for one chip runs unchanged on a mesh, as it
does on ttnn's MeshDevice. Tensors reach a mesh through the mappers (ShardTensorToMesh splits a
dimension, ReplicateTensorToMesh copies) and leave it through ConcatMeshToTensor.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from runtime.emulator.device import CURRENT_CQ, EmuDevice, Event
from runtime.emulator.tensor import Tensor


class EmuMeshDevice:
    """What `ttnn.open_mesh_device` returns in the emulator: `chips` in row-major mesh order."""

    def __init__(self, ttnn, shape: tuple[int, int], chips: list[EmuDevice]) -> None:
        self._ttnn = ttnn
        self.mesh_shape = shape
        self.chips = chips

    def get_num_devices(self) -> int:
        return len(self.chips)

    def get_device_ids(self) -> list[int]:
        return [c.device_id for c in self.chips]

    @property
    def shape(self):
        return self._ttnn.MeshShape(*self.mesh_shape)

    def compute_with_storage_grid_size(self):
        return self.chips[0].compute_with_storage_grid_size()

    def arch(self):
        return self.chips[0].arch()

    def enable_program_cache(self) -> None:
        pass

    def disable_and_clear_program_cache(self) -> None:
        pass

    def clear_program_cache(self) -> None:
        pass

    def close(self) -> None:
        for c in self.chips:
            c.close()


class MeshTensor:
    """A tensor distributed over a mesh (device storage) or prepared for one (host storage)."""

    def __init__(self, shards: list[Tensor]) -> None:
        self.shards = shards

    def __getattr__(self, name: str):
        attrs = [getattr(s, name) for s in self.shards]
        if not callable(attrs[0]):
            return attrs[0]  # shape, dtype, layout: the same on every chip
        return lambda *a, **k: _gather([f(*a, **k) for f in attrs])

    def __repr__(self) -> str:
        return f"MeshTensor({len(self.shards)} shards, {self.shards[0]!r})"


@dataclass(frozen=True)
class MeshEvent:
    events: tuple[Event, ...]  # one per chip


@dataclass(frozen=True)
class TensorToMesh:
    """A mesh mapper: `dim` None replicates, else splits that dimension into one part per chip."""

    mesh: EmuMeshDevice
    dim: int | None

    def split(self, data: torch.Tensor) -> list[torch.Tensor]:
        n = self.mesh.get_num_devices()
        if self.dim is None:
            return [data] * n
        if data.shape[self.dim] % n:
            raise RuntimeError(
                f"TT_FATAL: ShardTensorToMesh: dimension {self.dim} of size {data.shape[self.dim]} does not split "
                f"evenly over {n} devices"
            )
        return list(torch.chunk(data, n, dim=self.dim))


@dataclass(frozen=True)
class MeshToTensor:
    mesh: EmuMeshDevice
    dim: int


def ShardTensorToMesh(mesh_device, dim):
    return TensorToMesh(mesh_device, dim)


def ReplicateTensorToMesh(mesh_device):
    return TensorToMesh(mesh_device, None)


def ConcatMeshToTensor(mesh_device, dim):
    return MeshToTensor(mesh_device, dim)


def _chips_of(value) -> int | None:
    """How many chips a call spans: the first mesh device or mesh tensor among its arguments."""
    if isinstance(value, (EmuMeshDevice, MeshTensor)):
        return value.get_num_devices() if isinstance(value, EmuMeshDevice) else len(value.shards)
    if isinstance(value, (list, tuple)):
        return next((n for n in map(_chips_of, value) if n is not None), None)
    if isinstance(value, dict):
        return _chips_of(list(value.values()))
    return None


def _pick(value, i: int):
    if isinstance(value, MeshTensor):
        return value.shards[i]
    if isinstance(value, EmuMeshDevice):
        return value.chips[i]
    if isinstance(value, MeshEvent):
        return value.events[i]
    if isinstance(value, (list, tuple)):
        return type(value)(_pick(v, i) for v in value)
    if isinstance(value, dict):
        return {k: _pick(v, i) for k, v in value.items()}
    return value


def _gather(results: list):
    first = results[0]
    if isinstance(first, Tensor):
        return MeshTensor(results)
    if isinstance(first, Event):
        return MeshEvent(tuple(results))
    if isinstance(first, (list, tuple)):
        return type(first)(_gather(list(col)) for col in zip(*results, strict=True))
    return first  # None, sizes, trace ids: the same on every chip


def per_chip(fn: Callable) -> Callable:
    """`fn` (an emulated op) applied chip by chip when an argument lives on a mesh."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        n = _chips_of([args, kwargs])
        if n is None:
            return fn(*args, **kwargs)
        return _gather([fn(*_pick(args, i), **_pick(kwargs, i)) for i in range(n)])

    return call


def mesh_functions(single: dict[str, Callable], make_chip: Callable[..., EmuDevice]) -> dict[str, Callable]:
    """The mesh entry points of an emulated ttnn whose single-chip `from_torch`/`to_torch` are given."""
    from_torch_one, to_torch_one = single["from_torch"], single["to_torch"]

    @functools.wraps(from_torch_one)
    def from_torch(tensor, dtype=None, *, mesh_mapper=None, device=None, **kwargs):
        if mesh_mapper is None:
            return per_chip(from_torch_one)(tensor, dtype, device=device, **kwargs)
        parts = mesh_mapper.split(torch.as_tensor(tensor))
        chips = device.chips if isinstance(device, EmuMeshDevice) else [None] * len(parts)
        return MeshTensor([from_torch_one(p, dtype, device=c, **kwargs) for p, c in zip(parts, chips, strict=True)])

    @functools.wraps(to_torch_one)
    def to_torch(tensor, dtype=None, *, mesh_composer=None, **kwargs):
        if not isinstance(tensor, MeshTensor):
            return to_torch_one(tensor, dtype, **kwargs)
        if mesh_composer is None:
            if len(tensor.shards) > 1:
                raise RuntimeError(
                    "TT_FATAL: to_torch of a tensor on several devices needs a mesh_composer "
                    "(e.g. ttnn.ConcatMeshToTensor(mesh_device, dim=0))"
                )
            return to_torch_one(tensor.shards[0], dtype, **kwargs)
        return torch.cat([to_torch_one(s, dtype, **kwargs) for s in tensor.shards], dim=mesh_composer.dim)

    def open_mesh_device(
        mesh_shape=None,
        l1_small_size=0,
        trace_region_size=0,
        num_command_queues=1,
        dispatch_core_config=None,
        offset=None,
        physical_device_ids=[],
        worker_l1_size=0,
    ):
        rows, cols = (1, 1) if mesh_shape is None else tuple(mesh_shape)
        chips = [
            make_chip(device_id=i, trace_region_size=trace_region_size, num_command_queues=num_command_queues)
            for i in range(rows * cols)
        ]
        return EmuMeshDevice(chips[0]._ttnn, (rows, cols), chips)

    def close_mesh_device(multi_device):
        multi_device.close()

    def get_device_tensors(tensor):
        return list(tensor.shards) if isinstance(tensor, MeshTensor) else [tensor]

    def record_event(mesh_device, cq_id=None, sub_device_ids=[], device_range=None):
        cq = CURRENT_CQ[0] if cq_id is None else int(cq_id)
        return per_chip(lambda chip: chip.queues.record(cq))(mesh_device)

    def wait_for_event(cq_id, mesh_event):
        for event in mesh_event.events if isinstance(mesh_event, MeshEvent) else (mesh_event,):
            event.queues.wait(int(cq_id), event)

    @contextmanager
    def command_queue(cq_id):
        before = CURRENT_CQ[0]
        CURRENT_CQ[0] = int(cq_id)
        try:
            yield
        finally:
            CURRENT_CQ[0] = before

    return dict(
        from_torch=from_torch,
        to_torch=to_torch,
        open_mesh_device=open_mesh_device,
        close_mesh_device=close_mesh_device,
        get_device_tensors=get_device_tensors,
        record_event=record_event,
        wait_for_event=wait_for_event,
        command_queue=command_queue,
        ShardTensorToMesh=ShardTensorToMesh,
        ReplicateTensorToMesh=ReplicateTensorToMesh,
        ConcatMeshToTensor=ConcatMeshToTensor,
    )
