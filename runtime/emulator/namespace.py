"""`emulated_ttnn(target)`: a module that stands in for `ttnn` in a generated program.

Emulated: devices and meshes of them (mesh.py), command queues and events, tensors and the ops a
CNN needs (listed in EMULATED). Forwarded from the real
ttnn: its classes, enums and constants (Conv2dConfig, MemoryConfig, ShardSpec, CoreRangeSet,
DataType aliases, TILE_LAYOUT, DRAM_MEMORY_CONFIG, UnaryWithParam, MathFidelity, ...) and the pure
host helpers in FORWARDED_FUNCTIONS. Any other real function or op is refused: real ops crash on
host tensors, so a program using an op the emulator lacks fails with a clear AttributeError.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType

from hardware.targets import Target
from runtime.emulator import ops_concat, ops_conv, ops_eltwise, ops_matmul, ops_pool, ops_tensor, ops_upsample
from runtime.emulator.device import EmuDevice
from runtime.emulator.mesh import mesh_functions, per_chip
from runtime.emulator.tensor import Tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()

FORWARDED_FUNCTIONS = frozenset(
    {
        "create_sharded_memory_config",
        "get_conv_output_dim",
        "init_device_compute_kernel_config",
        "num_cores_to_corerangeset",
        "get_golden_function",
    }
)


def _trace_functions(ttnn_ns) -> dict:
    def begin_trace_capture(mesh_device, *, cq_id=None):
        return mesh_device.begin_trace()

    def end_trace_capture(mesh_device, trace_id, *, cq_id=None):
        mesh_device.end_trace(trace_id)

    def execute_trace(mesh_device, trace_id, *, cq_id=None, blocking=True):
        mesh_device.execute_trace(trace_id)

    def release_trace(mesh_device, trace_id):
        mesh_device.release_trace(trace_id)

    return dict(
        begin_trace_capture=begin_trace_capture,
        end_trace_capture=end_trace_capture,
        execute_trace=execute_trace,
        release_trace=release_trace,
    )


class EmulatedTTNN(ModuleType):
    """Module object: emulated names are attributes; other names resolve in __getattr__."""

    # set by emulated_ttnn (the emulated op functions are set from the op tables)
    Tensor: type
    EMULATED_TARGET: Target
    open_device: Callable[..., EmuDevice]
    close_device: Callable[[EmuDevice], None]
    synchronize_device: Callable[..., None]

    def __getattr__(self, name: str):
        real = getattr(tt, name)  # AttributeError for names ttnn does not have either
        if isinstance(real, ModuleType):
            raise AttributeError(f"emulator: ttnn.{name} (a submodule) is not emulated")
        if name in FORWARDED_FUNCTIONS or inspect.isclass(real) or not callable(real):
            return real
        raise AttributeError(
            f"emulator: ttnn.{name} is not emulated (only the ops a CNN needs are); "
            "extend runtime/emulator or run on a device"
        )

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(dir(tt)))


def emulated_ttnn(target: Target) -> EmulatedTTNN:
    """A fresh emulated `ttnn` whose devices are `target`."""
    ns = EmulatedTTNN("ttnn", f"ttnn 0.81.1 API emulated on the host for {target.name}")
    ns.Tensor = Tensor
    ns.EMULATED_TARGET = target

    def open_device(
        *,
        device_id=0,
        l1_small_size=0,
        trace_region_size=0,
        dispatch_core_config=None,
        worker_l1_size=0,
        num_command_queues=1,
    ):
        return EmuDevice(
            tt, target, device_id=device_id, trace_region_size=trace_region_size, num_command_queues=num_command_queues
        )

    def close_device(device):
        device.close()

    def synchronize_device(device, cq_id=None, sub_device_ids=[]):
        device.check_open()

    ns.open_device, ns.close_device = open_device, close_device
    ns.synchronize_device = per_chip(synchronize_device)
    for name, fn in _trace_functions(ns).items():  # a mesh captures and replays on every chip
        setattr(ns, name, per_chip(fn))
    for module in (ops_tensor, ops_conv, ops_eltwise, ops_pool, ops_upsample, ops_concat, ops_matmul):
        for name in EMULATED_BY_MODULE[module.__name__]:
            setattr(ns, name, per_chip(getattr(module, name)))
    for name, fn in mesh_functions(
        {"from_torch": ops_tensor.from_torch, "to_torch": ops_tensor.to_torch},
        lambda **kw: EmuDevice(tt, target, **kw),
    ).items():
        setattr(ns, name, fn)
    return ns


EMULATED_BY_MODULE = {
    ops_tensor.__name__: (
        "from_torch",
        "to_torch",
        "to_device",
        "from_device",
        "to_layout",
        "to_memory_config",
        "interleaved_to_sharded",
        "sharded_to_interleaved",
        "reshape",
        "slice",
        "permute",
        "deallocate",
        "reallocate",
        "copy_host_to_device_tensor",
        "copy",
    ),
    ops_conv.__name__: ("conv2d", "prepare_conv_weights", "prepare_conv_bias"),
    ops_eltwise.__name__: ("add", "multiply", "relu", "sigmoid"),
    ops_pool.__name__: ("max_pool2d", "avg_pool2d", "global_avg_pool2d"),
    ops_upsample.__name__: ("upsample",),
    ops_concat.__name__: ("concat",),
    ops_matmul.__name__: ("matmul",),
}
EMULATED = tuple(n for names in EMULATED_BY_MODULE.values() for n in names) + (
    "open_device",
    "close_device",
    "synchronize_device",
    "begin_trace_capture",
    "end_trace_capture",
    "execute_trace",
    "release_trace",
    "open_mesh_device",
    "close_mesh_device",
    "get_device_tensors",
    "record_event",
    "wait_for_event",
    "command_queue",
    "ShardTensorToMesh",
    "ReplicateTensorToMesh",
    "ConcatMeshToTensor",
)
