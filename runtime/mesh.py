"""Data parallel on a ttnn MeshDevice, two command queues and trace replay: throughput.

A generated module is ONE chip's program for its per-chip batch (INPUT_SHAPE); it runs unchanged on a
single device or on every chip of a mesh. `Pipeline` feeds it: a batch of chips x per-chip images is
split along the batch (`ttnn.ShardTensorToMesh(mesh, dim=0)`), the weights are replicated
(`ReplicateTensorToMesh`) and the outputs gathered (`ConcatMeshToTensor(mesh, dim=0)`). On one chip no
mapper is used, as before.

As Tenstorrent's throughput demos do:
- two command queues: queue 1 only writes the next input into a staging tensor; queue 0 copies it into
  the model's input and runs the program; events order them (queue 1 waits until queue 0 has copied the
  previous input, queue 0 until queue 1 has written). Only queue 0 runs programs: ttnn lets one queue
  own the device's programs at a time.
- trace: the first batch runs eagerly (it compiles the programs); the next captures the forward once
  and every later batch replays it (execute_trace), without host dispatch.
On a MOCK device (real ttnn without hardware, runtime/ttnn_mock.py) `wait_for_event`, ops inside a
trace capture and `execute_trace` crash the process: there they are not called (said once on stderr)
and the forward runs eagerly; everything else, queue 1's writes and the events included, is real.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import torch

from converter.errors import UserError
from runtime.weights import HostTensor, to_ttnn

MOCK_ENV = "TT_METAL_MOCK_CLUSTER_DESC_PATH"  # set: the real ttnn opens mock devices
_SAID: set[str] = set()


def say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(f"pdl2ttnn runtime: {message}", file=sys.stderr)


def on_mock(ttnn: ModuleType) -> bool:
    """The real ttnn on a mock device (the emulator emulates queues and traces in full)."""
    return getattr(ttnn, "EMULATED_TARGET", None) is None and bool(os.environ.get(MOCK_ENV))


def open_mesh(ttnn: ModuleType, module: ModuleType, mesh: tuple[int, int], command_queues: int = 1):
    """Device 0 for a 1x1 mesh (as single-chip programs always opened it), else a MeshDevice."""
    queues = {"num_command_queues": command_queues} if command_queues > 1 else {}
    if mesh == (1, 1):
        return ttnn.open_device(device_id=0, **module.DEVICE_PARAMS, **queues)
    return ttnn.open_mesh_device(ttnn.MeshShape(*mesh), **module.DEVICE_PARAMS, **queues)


def close_mesh(ttnn: ModuleType, device, mesh: tuple[int, int]) -> None:
    (ttnn.close_device if mesh == (1, 1) else ttnn.close_mesh_device)(device)


def to_device_layout(images: torch.Tensor, chips: int) -> torch.Tensor:
    """NCHW images -> [chips, 1, n*H*W, C]: each chip's share of the batch as the program's [1, 1, n*H*W, C]."""
    n, c, h, w = images.shape
    return images.to(torch.float32).permute(0, 2, 3, 1).reshape(chips, 1, n // chips * h * w, c)


class Pipeline:
    """A generated model on an open device or mesh, run batch after batch."""

    def __init__(
        self,
        ttnn: ModuleType,
        module: ModuleType,
        device,
        weights: dict[str, HostTensor],
        *,
        two_queues: bool = False,
        trace: bool = False,
    ):
        from runtime.run import model_class

        self.ttnn, self.module, self.device = ttnn, module, device
        self.chips = device.get_num_devices()
        self.two_queues, self.trace = two_queues, trace
        self.mock = on_mock(ttnn)
        mesh = self.chips > 1
        self.input_mapper = ttnn.ShardTensorToMesh(device, dim=0) if mesh else None
        self.composer = ttnn.ConcatMeshToTensor(device, dim=0) if mesh else None
        replicate = ttnn.ReplicateTensorToMesh(device) if mesh else None
        self.model = model_class(module)(device, to_ttnn(weights, ttnn, replicate))
        self.x = self.staging = self.op_event = self.trace_id = None
        self.traced: dict | None = None  # the captured forward's output tensors
        self.runs = 0

    @property
    def batch_size(self) -> int:
        return self.chips * self.module.INPUT_SHAPE[0]

    def __call__(self, images: torch.Tensor, taps: dict | None = None) -> dict[str, torch.Tensor]:
        """Head outputs (NCHW float32) of `images` (batch_size x 3 x H x W, RGB 0-255 floats); with
        a dict `taps` (eager runs only), also the component outputs into it."""
        module, ttnn = self.module, self.ttnn
        want = (self.batch_size, *module.INPUT_SHAPE[1:])
        if tuple(images.shape) != want:
            raise UserError(
                f"input is {tuple(images.shape)} but the module was generated for {tuple(module.INPUT_SHAPE)} per "
                f"chip and runs on {self.chips} chip(s), a batch of {want}: resize the images, pass that many, or "
                "regenerate with that --input-size / --batch-size"
            )
        host = ttnn.from_torch(
            to_device_layout(images, self.chips),
            dtype=module.INPUT_DTYPE,
            layout=module.INPUT_LAYOUT,
            mesh_mapper=self.input_mapper,
        )
        self._write(host)
        replay = self.trace and self.runs > 0 and taps is None
        if replay and self.mock:
            say_once(
                "trace capture and replay skipped on a mock device (ops inside a capture and execute_trace "
                "crash it): the forward runs eagerly"
            )
            replay = False
        if replay:
            if self.trace_id is None:
                self.trace_id = ttnn.begin_trace_capture(self.device, cq_id=0)
                self.traced = self.model.forward(self.x)
                ttnn.end_trace_capture(self.device, self.trace_id, cq_id=0)
            ttnn.execute_trace(self.device, self.trace_id, cq_id=0, blocking=False)
            out = self.traced
        else:
            out = self.model.forward(self.x, taps=taps)
        self.runs += 1
        assert out is not None
        result = {h: self.to_nchw(t, module.OUTPUTS[h]) for h, t in out.items()}
        if not replay:  # an eager run's outputs are new tensors each time
            for t in out.values():
                ttnn.deallocate(t)
        return result

    def _write(self, host) -> None:
        """The batch into the model's input tensor: on queue 0, or through queue 1 (see the module doc)."""
        ttnn, module = self.ttnn, self.module
        if self.x is None:  # the model's input: written on queue 0 once, to allocate it
            self.x = ttnn.to_device(host, self.device, memory_config=module.INPUT_MEMORY_CONFIG)
            if not self.two_queues:
                return
            self.staging = ttnn.to_device(host, self.device, memory_config=module.INPUT_MEMORY_CONFIG)
            self.op_event = ttnn.record_event(self.device, 0)
        if not self.two_queues:
            ttnn.copy_host_to_device_tensor(host, self.x, cq_id=0)
            return
        if self.mock:
            say_once("wait_for_event skipped on a mock device (it crashes it): queues ordered by program order")
        else:
            ttnn.wait_for_event(1, self.op_event)  # queue 0 has copied the previous input out of staging
        ttnn.copy_host_to_device_tensor(host, self.staging, cq_id=1)
        write_event = ttnn.record_event(self.device, 1)
        if not self.mock:
            ttnn.wait_for_event(0, write_event)
        ttnn.copy(self.staging, self.x)  # a program on queue 0, into the (traced) input tensor
        self.op_event = ttnn.record_event(self.device, 0)

    def to_nchw(self, tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """A device tensor ([1, 1, n*H*W, C] or [n, H, W, C] per chip) -> torch NCHW float32, all chips."""
        n, c, h, w = shape
        data = self.ttnn.to_torch(tensor, mesh_composer=self.composer).to(torch.float32)
        return data.reshape(self.chips * n, h, w, -1)[..., :c].permute(0, 3, 1, 2).contiguous()

    def close(self) -> None:
        if self.trace_id is not None:  # never captured on a mock
            self.ttnn.release_trace(self.device, self.trace_id)
