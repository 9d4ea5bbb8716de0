"""max_pool2d, avg_pool2d, global_avg_pool2d.

Values follow ttnn's pool goldens (their helper module is not shipped in the wheel, so the torch
calls are made here the same way: NHWC flat input, -inf / 0 padding, flat NHWC output).
Memory: DRAM inputs (or a DRAM dram_slice_config) run slice by slice like conv2d (slicing.py);
sliding-window pools go through halo (passes/cb_model.pool_halo_bytes) with their reader config
in L1_SMALL (or DRAM with config_tensor_in_dram); global_avg_pool2d first makes its input
interleaved in the output's buffer type and runs a reduction without halo, as real ttnn does.
"""

from __future__ import annotations

import torch

from passes import cb_model
from runtime.emulator.allocator import align
from runtime.emulator.device import require_device_tensor
from runtime.emulator.ops_eltwise import plan_dtype
from runtime.emulator.slicing import fit_slices
from runtime.emulator.sharding import cdiv, default_parallel, parallel_of
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


def _pool(name: str, input_tensor, batch_size, input_h, input_w, channels, kernel_size, stride, padding, dilation,
          ceil_mode, *, memory_config, dram_slice_config, applied_shard_scheme, dtype, output_layout,
          config_tensor_in_dram, torch_pool):
    device = require_device_tensor(name, input_tensor)
    shape = tuple(input_tensor.shape)
    if shape[0] * shape[1] * shape[2] != batch_size * input_h * input_w or shape[-1] < channels:
        raise RuntimeError(f"TT_FATAL: {name}: input {list(shape)} does not match batch_size*input_h*input_w = "
                           f"{batch_size}*{input_h}*{input_w} rows of {channels} channels")
    kernel, strd, dil = tuple(kernel_size), tuple(stride), tuple(dilation)
    pads = _pads(padding)

    def compute(x):
        return _flat_nhwc(torch_pool(_nchw(x, batch_size, input_h, input_w, channels), kernel, strd, pads, dil,
                                     ceil_mode))

    result = compute(input_tensor.data)
    out_nhw = result.shape[2]
    parallel = parallel_of(input_tensor.memory_config())
    if parallel is None:
        scheme = applied_shard_scheme.name if applied_shard_scheme is not None else "HEIGHT_SHARDED"
        parallel = default_parallel(scheme, device.target.grid, batch_size * input_h * input_w, channels)
    geometry = dict(kernel_size=kernel, shard_layout=parallel.layout, grid=parallel.grid, num_cores=parallel.num_cores)
    window = dict(kernel_size=kernel, stride=strd, padding=(max(pads[:2]), max(pads[2:])), dilation=dil)
    cores_nhw, cores_c = cb_model.core_split(parallel.layout, parallel.grid, parallel.num_cores)
    c_core = cb_model.round_up(channels, 32 * cores_c) // cores_c if cores_c > 1 else channels
    pool_cb = cb_model.pool2d_cb_bytes(channels_per_core=c_core, kernel_size=kernel, output_dtype=plan_dtype(dtype))
    tiled = input_tensor.layout == tt.TILE_LAYOUT
    cb = max(pool_cb, cb_model.halo_cb_bytes(channels_per_core=c_core, tiled_input=tiled))
    halo = cb_model.pool_halo_bytes(batch=batch_size, input_hw=(input_h, input_w),
                                    rows_per_core=cb_model.round_up(cdiv(out_nhw, cores_nhw), 32),
                                    channels_per_core=c_core, **window)
    config = ("DRAM" if config_tensor_in_dram else "L1_SMALL", align(2 * cdiv(out_nhw, parallel.num_cores) + 64, 16))
    in_dram = input_tensor.memory_config().buffer_type == tt.BufferType.DRAM
    slice_type = dram_slice_config.slice_type if dram_slice_config is not None else None
    if (slice_type is not None and slice_type != tt.Op2DSliceConfig.SliceTypeEnum.L1Full) or (
            slice_type is None and in_dram):
        cb = max(pool_cb, cb_model.halo_cb_bytes(channels_per_core=c_core, tiled_input=False))
        out = device.new_tensor(result, dtype, output_layout, memory_config or tt.DRAM_MEMORY_CONFIG)
        in_rows, _ = parallel.shard_shape(batch_size * input_h * input_w, channels)
        elem = 4 if input_tensor.dtype.name == "FLOAT32" else 2
        out_rows, _ = parallel.shard_shape(out_nhw, channels)

        def working_set(n: int):
            h = cb_model.halo_bytes(batch=batch_size, input_hw=(input_h, input_w), channels=channels,
                                    dtype=plan_dtype(input_tensor.dtype), num_slices=n, **window,
                                    **{k: v for k, v in geometry.items() if k != "kernel_size"})
            return cb, [cdiv(in_rows, n) * channels * elem, h, cdiv(out_rows, n) * channels * elem], [config]

        try:
            fit_slices(device, name, dram_slice_config.num_slices if dram_slice_config is not None else 0,
                       result.shape[2], working_set)
        except Exception:
            device.memory.release(out._buffer)
            raise
    else:
        with device.program(name, cb) as temps:
            device.temp(temps, *config)
            device.temp(temps, "L1", halo)
            mc = memory_config or parallel.memory_config(out_nhw, channels, output_layout == tt.TILE_LAYOUT)
            out = device.new_tensor(result, dtype, output_layout, mc)
    device.record_step(compute, [input_tensor], [out])
    return out


def _torch_max(x, kernel, stride, pads, dilation, ceil_mode):
    x = torch.nn.functional.pad(x, (pads[2], pads[3], pads[0], pads[1]), value=float("-inf"))
    return torch.nn.functional.max_pool2d(x, kernel, stride, 0, dilation, ceil_mode)


def max_pool2d(input_tensor, batch_size, input_h, input_w, channels, kernel_size, stride, padding, dilation,
               ceil_mode=False, *, memory_config=None, dram_slice_config=None, applied_shard_scheme=None,
               deallocate_input=False, reallocate_halo_output=True, return_indices=False, dtype=tt.bfloat16,
               output_layout=tt.ROW_MAJOR_LAYOUT, config_tensor_in_dram=False):
    if return_indices:
        raise NotImplementedError("emulator: max_pool2d(return_indices=True) is not emulated")
    out = _pool("max_pool2d", input_tensor, batch_size, input_h, input_w, channels, kernel_size, stride, padding,
                dilation, ceil_mode, memory_config=memory_config, dram_slice_config=dram_slice_config,
                applied_shard_scheme=applied_shard_scheme, dtype=dtype, output_layout=output_layout,
                config_tensor_in_dram=config_tensor_in_dram, torch_pool=_torch_max)
    if deallocate_input:
        input_tensor.deallocate()
    return out


def avg_pool2d(input_tensor, batch_size, input_h, input_w, channels, kernel_size, stride, padding, ceil_mode=False,
               count_include_pad=True, divisor_override=None, *, memory_config=None, dram_slice_config=None,
               applied_shard_scheme=None, compute_kernel_config=None, deallocate_input=False,
               reallocate_halo_output=True, dtype=tt.bfloat16, output_layout=tt.ROW_MAJOR_LAYOUT,
               config_tensor_in_dram=False):
    def torch_avg(x, kernel, stride_, pads, _dilation, ceil):
        if pads[0] == pads[1] and pads[2] == pads[3]:
            return torch.nn.functional.avg_pool2d(x, kernel, stride_, (pads[0], pads[2]), ceil, count_include_pad,
                                                  divisor_override)
        x = torch.nn.functional.pad(x, (pads[2], pads[3], pads[0], pads[1]))
        return torch.nn.functional.avg_pool2d(x, kernel, stride_, 0, ceil, True, divisor_override)

    out = _pool("avg_pool2d", input_tensor, batch_size, input_h, input_w, channels, kernel_size, stride, padding,
                (1, 1), ceil_mode, memory_config=memory_config, dram_slice_config=dram_slice_config,
                applied_shard_scheme=applied_shard_scheme, dtype=dtype, output_layout=output_layout,
                config_tensor_in_dram=config_tensor_in_dram, torch_pool=torch_avg)
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
    staged = tt.MemoryConfig(tt.TensorMemoryLayout.INTERLEAVED, out_mc.buffer_type)
    in_dtype = plan_dtype(input_tensor.dtype)
    cb = cb_model.reduce_cb_bytes(in_dtype=in_dtype, out_dtype=in_dtype)
    if in_mc != staged and not in_mc.is_sharded():  # a copy program stages it, two tiles at a time
        cb = max(cb, 2 * cb_model.TILE_BYTES[in_dtype])
    with device.program("global_avg_pool2d", cb) as temps:
        if in_mc != staged:  # ttnn makes the input interleaved in the output's buffer type first
            copy = device.new_tensor(input_tensor.data, input_tensor.dtype, input_tensor.layout, staged)
            temps.append(copy._buffer)
        out = device.new_tensor(compute(input_tensor.data), out_dtype, tt.TILE_LAYOUT, out_mc)
    device.record_step(compute, [input_tensor], [out])
    return out
