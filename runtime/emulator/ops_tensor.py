"""Host <-> device moves, layouts, memory configs, reshape/permute: the tensor plumbing ops.

Signatures are those of ttnn 0.81.1 (tests/test_emulator_signatures.py compares them).
"""

from __future__ import annotations

import builtins

import torch

from runtime.emulator import dtypes
from runtime.emulator.device import CURRENT_CQ, EmuDevice, require_device_tensor
from runtime.emulator.tensor import TILE, Tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()

_TORCH_TO_TTNN = {
    torch.float32: "float32",
    torch.bfloat16: "bfloat16",
    torch.float16: "bfloat16",
    torch.float64: "float32",
    torch.int32: "uint32",
    torch.int64: "uint32",
    torch.uint8: "uint32",
}


def _host(data: torch.Tensor, dtype, layout, memory_config=None) -> Tensor:
    return Tensor(tt, dtypes.round_to(data, dtype), dtype, layout, memory_config or tt.DRAM_MEMORY_CONFIG)


def _holds(src: Tensor, dtype) -> bool:
    """Values moved from `src` are already `dtype` values: same dtype, and one whose rounding is elementwise
    and idempotent (bfloat8_b's is not: its shared exponents follow the shape, and tiny values flush)."""
    return dtype == src.dtype and dtype.name in ("FLOAT32", "BFLOAT16")


def _unary_step(
    device: EmuDevice, name: str, src: Tensor, data: torch.Tensor, dtype, layout, memory_config, compute
) -> Tensor:
    """A data-movement op: one input, one new output tensor."""
    out = device.new_tensor(data, dtype, layout, memory_config, rounded=_holds(src, dtype))
    device.record_step(compute, [src], [out])
    return out


def from_torch(
    tensor,
    dtype=None,
    *,
    spec=None,
    tile=None,
    pad_value=None,
    layout=None,
    device=None,
    memory_config=None,
    mesh_mapper=None,
    cq_id=None,
    preserve_nan_values=False,
    col_tilize=False,
    enable_bfloat_opt=False,
):
    if tensor is None:
        return None
    data = torch.as_tensor(tensor)
    if dtype is None:
        dtype = getattr(tt, _TORCH_TO_TTNN.get(data.dtype, "float32"))
    layout = tt.ROW_MAJOR_LAYOUT if layout is None else layout
    if dtype == tt.bfloat8_b and layout != tt.TILE_LAYOUT:
        raise RuntimeError("TT_FATAL: Layout must be Layout::TILE for bfloat8_b or bfloat4_b!")
    data = data.to(torch.int64 if dtype == tt.uint32 else torch.float32)
    if device is None:
        return _host(data, dtype, layout, memory_config)
    if device.capturing:
        raise RuntimeError("TT_FATAL: writing a host tensor to the device is not allowed during trace capture")
    out = device.new_tensor(data, dtype, layout, memory_config or tt.DRAM_MEMORY_CONFIG)
    device.queues.write(_cq(cq_id), out._buffer)
    return out


def _cq(cq_id) -> int:
    """The queue a command goes to: its own cq_id, else the current one (ttnn.command_queue)."""
    return CURRENT_CQ[0] if cq_id is None else int(cq_id)


def to_torch(tensor, dtype=None, *, torch_rank=None, mesh_composer=None, device=None, cq_id=None):
    if not tensor.is_allocated():
        raise RuntimeError("TT_FATAL: Tensor is not allocated (it was deallocated): cannot read it back")
    if tensor._device is not None:
        tensor._device.queues.read(_cq(cq_id), tensor._buffer)
    data = tensor._data
    name = dtypes.dtype_name(tensor.dtype)
    out = (
        data.to(torch.bfloat16) if name == "BFLOAT16" else (data.to(torch.int32) if name == "UINT32" else data.clone())
    )
    if torch_rank is not None:
        while out.dim() > torch_rank and out.shape[0] == 1:
            out = out.squeeze(0)
    return out.to(dtype) if dtype is not None else out


def to_device(tensor, device, memory_config=None, *, queue_id=None):
    if tensor._device is not None:
        return tensor
    if not isinstance(device, EmuDevice):
        raise TypeError("to_device(): incompatible function arguments: device must be an emulated ttnn device")
    if device.capturing:
        raise RuntimeError("TT_FATAL: writing a host tensor to the device is not allowed during trace capture")
    out = device.new_tensor(tensor.data, tensor.dtype, tensor.layout, memory_config or tensor.memory_config())
    device.queues.write(_cq(queue_id), out._buffer)
    return out


def from_device(tensor, blocking=True, *, queue_id=None):
    if tensor._device is None:
        return tensor
    tensor._device.queues.read(_cq(queue_id), tensor._buffer)
    return _host(tensor.data, tensor.dtype, tensor.layout, tensor.memory_config())


def copy_host_to_device_tensor(host_tensor, device_tensor, cq_id=None):
    if host_tensor._device is not None or device_tensor._device is None:
        raise RuntimeError("TT_FATAL: copy_host_to_device_tensor copies a host tensor into a device tensor")
    if not device_tensor.is_allocated():
        raise RuntimeError("TT_FATAL: copy_host_to_device_tensor: the device tensor was deallocated")
    if tuple(host_tensor.shape) != tuple(device_tensor.shape) or host_tensor.dtype != device_tensor.dtype:
        raise RuntimeError(
            f"TT_FATAL: copy_host_to_device_tensor: host tensor {list(host_tensor.shape)} {host_tensor.dtype} does not "
            f"match device tensor {list(device_tensor.shape)} {device_tensor.dtype}"
        )
    device_tensor._device.queues.write(_cq(cq_id), device_tensor._buffer)
    device_tensor._data = dtypes.round_to(host_tensor.data, device_tensor.dtype)


def copy(input_a, input_b):
    """Copies `input_a`'s values into the device tensor `input_b` (same shape and dtype), in place: a
    program, so a trace that reads `input_b` sees them (how a two-queue pipeline feeds its trace)."""
    device = require_device_tensor("copy", input_a, input_b)
    if tuple(input_a.shape) != tuple(input_b.shape) or input_a.dtype != input_b.dtype:
        raise RuntimeError(
            f"TT_FATAL: copy: input {list(input_a.shape)} {input_a.dtype} does not match output "
            f"{list(input_b.shape)} {input_b.dtype}"
        )
    input_b._buffer.written = (CURRENT_CQ[0], device.queues.seq[CURRENT_CQ[0]])
    input_b._data = input_a.data.clone()
    device.record_step(lambda a: a.clone(), [input_a], [input_b])
    return input_b


def deallocate(tensor, force=True):
    tensor.deallocate(force)


def reallocate(tensor, memory_config=None):
    """A new tensor with the same values; the input is deallocated (on a device this defragments L1)."""
    device = require_device_tensor("reallocate", tensor)
    data = tensor.data
    tensor.deallocate()
    out = device.new_tensor(
        data, tensor.dtype, tensor.layout, memory_config or tensor.memory_config(), rounded=_holds(tensor, tensor.dtype)
    )
    device.record_step(lambda x: x, [tensor], [out])
    return out


def to_layout(tensor, layout, dtype=None, memory_config=None, sub_core_grids=None, pad_value=0.0):
    dtype = dtype or tensor.dtype
    if tensor._device is None:
        if dtype == tt.bfloat8_b and layout != tt.TILE_LAYOUT:
            raise RuntimeError("TT_FATAL: Layout must be Layout::TILE for bfloat8_b or bfloat4_b!")
        return _host(tensor.data, dtype, layout, tensor.memory_config())
    device = require_device_tensor("to_layout", tensor)
    if layout == tensor.layout and dtype == tensor.dtype and memory_config is None:
        return tensor
    return _unary_step(
        device, "to_layout", tensor, tensor.data, dtype, layout, memory_config or tensor.memory_config(), lambda x: x
    )


def to_memory_config(tensor, memory_config, dtype=None, output_tensor=None):
    device = require_device_tensor("to_memory_config", tensor)
    return _unary_step(
        device,
        "to_memory_config",
        tensor,
        tensor.data,
        dtype or tensor.dtype,
        tensor.layout,
        memory_config,
        lambda x: x,
    )


def interleaved_to_sharded(input_tensor, *args, **kwargs):
    """Both 0.81.1 overloads: (grid, shard_shape, shard_scheme, shard_orientation, output_dtype=None) or
    (sharded_memory_config, output_dtype=None); keyword-only keep_l1_aligned / preallocated_output."""
    device = require_device_tensor("interleaved_to_sharded", input_tensor)
    if input_tensor.is_sharded():
        raise RuntimeError("TT_FATAL: interleaved_to_sharded: input tensor must be interleaved")
    names_mc = ("sharded_memory_config", "output_dtype")
    names_grid = ("grid", "shard_shape", "shard_scheme", "shard_orientation", "output_dtype")
    kw = dict(kwargs)
    kw.pop("keep_l1_aligned", None)
    kw.pop("preallocated_output", None)
    first = args[0] if args else kw.get("sharded_memory_config", kw.get("grid"))
    if isinstance(first, tt.MemoryConfig):
        bound = dict(zip(names_mc, args, strict=False)) | kw
        memory_config, output_dtype = bound["sharded_memory_config"], bound.get("output_dtype")
    else:
        bound = dict(zip(names_grid, args, strict=False)) | kw
        grid = bound["grid"]
        if isinstance(grid, tt.CoreCoord):
            grid = tt.CoreRangeSet([tt.CoreRange(tt.CoreCoord(0, 0), tt.CoreCoord(grid.x - 1, grid.y - 1))])
        spec = tt.ShardSpec(grid, list(bound["shard_shape"]), bound["shard_orientation"])
        memory_config = tt.MemoryConfig(bound["shard_scheme"], tt.BufferType.L1, spec)
        output_dtype = bound.get("output_dtype")
    return _unary_step(
        device,
        "interleaved_to_sharded",
        input_tensor,
        input_tensor.data,
        output_dtype or input_tensor.dtype,
        input_tensor.layout,
        memory_config,
        lambda x: x,
    )


def sharded_to_interleaved(input_tensor, memory_config=None, output_dtype=None):
    device = require_device_tensor("sharded_to_interleaved", input_tensor)
    if not input_tensor.is_sharded():
        raise RuntimeError("TT_FATAL: sharded_to_interleaved: input tensor must be sharded")
    return _unary_step(
        device,
        "sharded_to_interleaved",
        input_tensor,
        input_tensor.data,
        output_dtype or input_tensor.dtype,
        input_tensor.layout,
        memory_config or tt.DRAM_MEMORY_CONFIG,
        lambda x: x,
    )


def _is_view(old: tuple[int, ...], new: tuple[int, ...], tile: bool) -> bool:
    """A reshape that keeps the last dim (and tile rows) is a metadata change on the same buffer."""
    if not old or not new or old[-1] != new[-1]:
        return False
    if not tile:
        return True
    return (len(old) < 2 or old[-2] % TILE == 0) and (len(new) < 2 or new[-2] % TILE == 0)


def reshape(
    input_tensor,
    shape,
    *args,
    memory_config=None,
    pad_value=None,
    reshape_tile_mode=None,
    sub_core_grids=None,
    skip_padding_fill=False,
):
    """(input_tensor, shape) or (input_tensor, logical_shape, padded_shape); the padded shape is ignored."""
    new_shape = tuple(int(d) for d in shape)
    if -1 in new_shape:
        new_shape = tuple(input_tensor.data.reshape(new_shape).shape)
    data = input_tensor.data
    if data.numel() != torch.Size(new_shape).numel():
        raise RuntimeError(
            f"TT_FATAL: reshape: cannot reshape {list(data.shape)} ({data.numel()} values) to {list(new_shape)}"
        )
    new_data = data.reshape(new_shape)
    if input_tensor._device is None:
        return Tensor(tt, new_data, input_tensor.dtype, input_tensor.layout, input_tensor.memory_config())
    device = require_device_tensor("reshape", input_tensor)
    if _is_view(tuple(data.shape), new_shape, input_tensor.is_tile) and memory_config is None:
        out = device.view(input_tensor, new_data)
    else:
        mc = memory_config or input_tensor.memory_config()
        if mc.is_sharded() and memory_config is None:
            mc = tt.MemoryConfig(tt.TensorMemoryLayout.INTERLEAVED, mc.buffer_type)
        out = device.new_tensor(new_data, input_tensor.dtype, input_tensor.layout, mc)
    device.record_step(lambda x: x.reshape(new_shape), [input_tensor], [out])
    return out


def slice(
    input_tensor,
    slice_start,
    slice_end,
    slice_step=None,
    *,
    memory_config=None,
    output_tensor=None,
    pad_value=None,
    sub_core_grids=None,
):
    """Rows [start, end) (step) of each dim; the output is interleaved in the input's buffer unless told."""
    device = require_device_tensor("slice", input_tensor)
    shape = tuple(input_tensor.shape)
    starts, ends = [int(v) for v in slice_start], [int(v) for v in slice_end]
    steps = [1] * len(shape) if slice_step is None else [int(v) for v in slice_step]
    if not len(starts) == len(ends) == len(steps) == len(shape):
        raise RuntimeError(
            f"TT_FATAL: slice: starts {starts}, ends {ends} and steps {steps} must each have one "
            f"entry per dim of {list(shape)}"
        )
    for d, (lo, hi, st, n) in enumerate(zip(starts, ends, steps, shape, strict=True)):
        if not (0 <= lo < n and lo < hi <= n and st >= 1):
            raise RuntimeError(f"TT_FATAL: slice: dim {d} of size {n}: start {lo}, end {hi}, step {st} out of range")
    if input_tensor.dtype == tt.bfloat8_b and any(st != 1 for st in steps):
        raise RuntimeError("TT_FATAL: slice: strided slicing is not supported for bfloat8_b tensors")
    index = tuple(builtins.slice(lo, hi, st) for lo, hi, st in zip(starts, ends, steps, strict=True))
    mc = memory_config or input_tensor.memory_config()
    if mc.is_sharded() and memory_config is None:
        mc = tt.MemoryConfig(tt.TensorMemoryLayout.INTERLEAVED, mc.buffer_type)
    return _unary_step(
        device,
        "slice",
        input_tensor,
        input_tensor.data[index].contiguous(),
        input_tensor.dtype,
        input_tensor.layout,
        mc,
        lambda x: x[index].contiguous(),
    )


def permute(input_tensor, dims, *, memory_config=None, pad_value=0.0):
    dims = tuple(int(d) for d in dims)
    device = require_device_tensor("permute", input_tensor)
    mc = memory_config or input_tensor.memory_config()
    if mc.is_sharded() and memory_config is None:
        mc = tt.MemoryConfig(tt.TensorMemoryLayout.INTERLEAVED, mc.buffer_type)
    return _unary_step(
        device,
        "permute",
        input_tensor,
        input_tensor.data.permute(dims).contiguous(),
        input_tensor.dtype,
        input_tensor.layout,
        mc,
        lambda x: x.permute(dims).contiguous(),
    )
