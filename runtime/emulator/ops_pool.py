"""max_pool2d, avg_pool2d, global_avg_pool2d.

Values follow ttnn's pool goldens (their helper module is not shipped in the wheel, so the torch
calls are made here the same way: NHWC flat input, -inf / 0 padding, flat NHWC output).
Output placement as ttnn's: a DRAM input (or a DRAM dram_slice_config) writes a DRAM output, else the
output is sharded like the input (or by applied_shard_scheme); global_avg_pool2d writes interleaved
in the input's buffer type unless told otherwise.
"""

from __future__ import annotations

import torch

from runtime.emulator.device import require_device_tensor
from runtime.emulator.sharding import default_parallel, parallel_of
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()


def _pads(padding) -> tuple[int, int, int, int]:
    p = [int(v) for v in padding]
    return (p[0], p[0], p[1], p[1]) if len(p) == 2 else (p[0], p[1], p[2], p[3])


def _nchw(x: torch.Tensor, n: int, h: int, w: int, c: int) -> torch.Tensor:
    return x.reshape(n, h, w, -1)[..., :c].permute(0, 3, 1, 2)


def _flat_nhwc(y: torch.Tensor) -> torch.Tensor:
    n, c, h, w = y.shape
    return y.permute(0, 2, 3, 1).reshape(1, 1, n * h * w, c)


def _pool(
    name: str,
    input_tensor,
    batch_size,
    input_h,
    input_w,
    channels,
    kernel_size,
    stride,
    padding,
    dilation,
    ceil_mode,
    *,
    memory_config,
    dram_slice_config,
    applied_shard_scheme,
    dtype,
    output_layout,
    torch_pool,
):
    device = require_device_tensor(name, input_tensor)
    shape = tuple(input_tensor.shape)
    if shape[0] * shape[1] * shape[2] != batch_size * input_h * input_w or shape[-1] < channels:
        raise RuntimeError(
            f"TT_FATAL: {name}: input {list(shape)} does not match batch_size*input_h*input_w = "
            f"{batch_size}*{input_h}*{input_w} rows of {channels} channels"
        )
    kernel, strd, dil = tuple(kernel_size), tuple(stride), tuple(dilation)
    pads = _pads(padding)

    def compute(x):
        return _flat_nhwc(
            torch_pool(_nchw(x, batch_size, input_h, input_w, channels), kernel, strd, pads, dil, ceil_mode)
        )

    result = compute(input_tensor.data)
    out_nhw = result.shape[2]
    parallel = parallel_of(input_tensor.memory_config())
    if parallel is None:
        scheme = applied_shard_scheme.name if applied_shard_scheme is not None else "HEIGHT_SHARDED"
        parallel = default_parallel(scheme, device.target.grid, batch_size * input_h * input_w, channels)
    in_dram = input_tensor.memory_config().buffer_type == tt.BufferType.DRAM
    slice_type = dram_slice_config.slice_type if dram_slice_config is not None else None
    if (slice_type is not None and slice_type != tt.Op2DSliceConfig.SliceTypeEnum.L1Full) or (
        slice_type is None and in_dram
    ):
        out = device.new_tensor(result, dtype, output_layout, memory_config or tt.DRAM_MEMORY_CONFIG)
    else:
        mc = memory_config or parallel.memory_config(out_nhw, channels, output_layout == tt.TILE_LAYOUT)
        out = device.new_tensor(result, dtype, output_layout, mc)
    device.record_step(compute, [input_tensor], [out])
    return out


def _torch_max(x, kernel, stride, pads, dilation, ceil_mode):
    x = torch.nn.functional.pad(x, (pads[2], pads[3], pads[0], pads[1]), value=float("-inf"))
    return torch.nn.functional.max_pool2d(x, kernel, stride, 0, dilation, ceil_mode)


def max_pool2d(
    input_tensor,
    batch_size,
    input_h,
    input_w,
    channels,
    kernel_size,
    stride,
    padding,
    dilation,
    ceil_mode=False,
    *,
    memory_config=None,
    dram_slice_config=None,
    applied_shard_scheme=None,
    deallocate_input=False,
    reallocate_halo_output=True,
    return_indices=False,
    dtype=tt.bfloat16,
    output_layout=tt.ROW_MAJOR_LAYOUT,
    config_tensor_in_dram=False,
):
    if return_indices:
        raise NotImplementedError("emulator: max_pool2d(return_indices=True) is not emulated")
    out = _pool(
        "max_pool2d",
        input_tensor,
        batch_size,
        input_h,
        input_w,
        channels,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        memory_config=memory_config,
        dram_slice_config=dram_slice_config,
        applied_shard_scheme=applied_shard_scheme,
        dtype=dtype,
        output_layout=output_layout,
        torch_pool=_torch_max,
    )
    if deallocate_input:
        input_tensor.deallocate()
    return out


def avg_pool2d(
    input_tensor,
    batch_size,
    input_h,
    input_w,
    channels,
    kernel_size,
    stride,
    padding,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    *,
    memory_config=None,
    dram_slice_config=None,
    applied_shard_scheme=None,
    compute_kernel_config=None,
    deallocate_input=False,
    reallocate_halo_output=True,
    dtype=tt.bfloat16,
    output_layout=tt.ROW_MAJOR_LAYOUT,
    config_tensor_in_dram=False,
):
    def torch_avg(x, kernel, stride_, pads, _dilation, ceil):
        if pads[0] == pads[1] and pads[2] == pads[3]:
            return torch.nn.functional.avg_pool2d(
                x, kernel, stride_, (pads[0], pads[2]), ceil, count_include_pad, divisor_override
            )
        x = torch.nn.functional.pad(x, (pads[2], pads[3], pads[0], pads[1]))
        return torch.nn.functional.avg_pool2d(x, kernel, stride_, 0, ceil, True, divisor_override)

    out = _pool(
        "avg_pool2d",
        input_tensor,
        batch_size,
        input_h,
        input_w,
        channels,
        kernel_size,
        stride,
        padding,
        (1, 1),
        ceil_mode,
        memory_config=memory_config,
        dram_slice_config=dram_slice_config,
        applied_shard_scheme=applied_shard_scheme,
        dtype=dtype,
        output_layout=output_layout,
        torch_pool=torch_avg,
    )
    if deallocate_input:
        input_tensor.deallocate()
    return out


def global_avg_pool2d(input_tensor, *, memory_config=None, dtype=None):
    device = require_device_tensor("global_avg_pool2d", input_tensor)
    shape = tuple(input_tensor.shape)
    if len(shape) not in (2, 3, 4):
        raise ValueError(f"global_avg_pool2d expects rank 2, 3, or 4 input, got rank {len(shape)}")
    golden = tt.get_golden_function(tt.global_avg_pool2d)
    n, c = (shape[0], shape[3]) if len(shape) == 4 else (1, shape[-1] if len(shape) == 3 else 1)

    def compute(x):
        return golden(x).reshape(n, 1, 1, c)

    out_dtype = dtype or tt.bfloat16
    in_mc = input_tensor.memory_config()
    interleaved = tt.MemoryConfig(tt.TensorMemoryLayout.INTERLEAVED, in_mc.buffer_type)
    out_mc = memory_config or interleaved
    out = device.new_tensor(compute(input_tensor.data), out_dtype, tt.TILE_LAYOUT, out_mc)
    device.record_step(compute, [input_tensor], [out])
    return out
