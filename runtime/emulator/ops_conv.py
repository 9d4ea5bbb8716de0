"""conv2d, prepare_conv_weights, prepare_conv_bias: ttnn 0.81.1 semantics and L1 footprint.

Values: the stored (already rounded) input and the weights rounded to `weights_dtype` as the device
stores them, multiplied as the matrix engine does under the compute_config (math-fidelity phases, bf16
or fp32 Dst accumulation per K block: runtime/emulator/fidelity.py), then the fused activation (ttnn's
golden) and the rounding to the output dtype.

Memory, per core, while the conv runs (lock-step over the grid):
- L1_FULL: the input resharded to the conv's sharding if it is not already (a temporary), the halo
  output (passes/cb_model.halo_bytes), the output, the circular buffers (cb_model.conv2d_cb_bytes)
  and the reader config tensor in L1_SMALL (or DRAM with config_tensors_in_dram).
- DRAM slicing (slice_config DRAM*, or None with a DRAM input): per slice the input slice shard,
  its halo and the output slice shard live in L1 with the slice's CBs; the output stays in DRAM.
  With num_slices=0 the smallest power-of-two slice count that fits is used, as ttnn's auto slicing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from passes import cb_model
from runtime.emulator import dtypes, fidelity
from runtime.emulator.allocator import DeviceMemoryError, align
from runtime.emulator.device import EmuDevice
from runtime.emulator.ops_eltwise import plan_dtype
from runtime.emulator.slicing import fit_slices
from runtime.emulator.sharding import Parallel, cdiv, default_parallel, heuristic_layout, parallel_of
from runtime.emulator.tensor import TILE, Tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()
_golden_activation = tt.operations.activations.get_golden_function_for_activation


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pads(padding) -> tuple[int, int, int, int]:
    p = [int(v) for v in ([padding] * 2 if isinstance(padding, int) else padding)]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise TypeError("conv2d(): padding must be [pad_h, pad_w] or [top, bottom, left, right]")


def round_weights(w: torch.Tensor, dtype) -> torch.Tensor:
    """OIHW weights as the device stores them: a [kh*kw*I, O] tile matrix, so bfloat8_b shares
    exponents along output channels."""
    if dtype.name != "BFLOAT8_B":
        return dtypes.round_to(w, dtype)
    return dtypes.round_to(w.permute(2, 3, 1, 0), dtype).permute(3, 2, 0, 1).contiguous()


def _weights_dtype(cfg, weight_tensor: Tensor):
    wd = cfg.weights_dtype or weight_tensor.dtype
    if wd.name not in ("BFLOAT16", "BFLOAT8_B", "FLOAT32"):
        raise RuntimeError(f"TT_FATAL: conv2d: weights_dtype {wd} is not supported (use bfloat16 or bfloat8_b)")
    return wd


def _interm_round(math: fidelity.MathConfig, out_dtype):
    """Rounding of the partials the conv packs to its intermediate CB between K blocks (None: lossless).
    The CB is FLOAT32/BFLOAT16 with packer_l1_acc, else the output format (conv program factory)."""
    name = ("FLOAT32" if math.fp32_dest_acc else "BFLOAT16") if math.packer_l1_acc else out_dtype.name
    if name == "FLOAT32" or (name == "BFLOAT16" and not math.fp32_dest_acc):  # bf16 Dst already rounds
        return None
    if name == "BFLOAT16":
        return fidelity.round_bf16
    return lambda t: dtypes.round_to(t.permute(0, 2, 3, 1), out_dtype).permute(0, 3, 1, 2)


def _weight_matrix_shape(in_channels: int, out_channels: int, kernel: tuple[int, int]) -> tuple[int, int]:
    # grouped convs are run as dense convs with block-diagonal weights
    return kernel[0] * kernel[1] * align(in_channels, TILE), align(out_channels, TILE)


def _device_weights(device: EmuDevice, weight_tensor: Tensor, wdtype, in_channels: int, out_channels: int,
                    kernel: tuple[int, int]) -> Tensor:
    if weight_tensor._device is not None:
        if not weight_tensor.is_allocated():
            raise RuntimeError("TT_FATAL: conv2d: weight tensor was deallocated")
        return weight_tensor  # prepared earlier (prepare_conv_weights / return_weights_and_bias)
    if weight_tensor.layout != tt.ROW_MAJOR_LAYOUT or weight_tensor.dtype.name not in ("FLOAT32", "BFLOAT16"):
        raise RuntimeError("TT_FATAL: conv2d: host weights must be FLOAT32 or BFLOAT16 in ROW_MAJOR layout")
    # host weights are re-prepared on every call, as ttnn does; the rounded values are cached on the
    # torch values, which from_torch shares between host tensors of the same float32 weights (a new
    # model on every run), so emulation pays for the rounding once; _version notices in-place edits
    values = weight_tensor.data
    cache = values.__dict__.setdefault("_emulator_rounded_as", {})
    version, rounded = cache.get(wdtype.name, (None, None))
    if version != values._version:
        rounded = round_weights(values, wdtype)
        cache[wdtype.name] = (values._version, rounded)
    return device.new_tensor(rounded, wdtype, tt.TILE_LAYOUT, tt.DRAM_MEMORY_CONFIG,
                             stored_shape=_weight_matrix_shape(in_channels, out_channels, kernel), rounded=True)


def _device_bias(device: EmuDevice, bias_tensor: Tensor | None, wdtype, out_channels: int) -> Tensor | None:
    if bias_tensor is None or bias_tensor._device is not None:
        return bias_tensor
    data = bias_tensor.data.reshape(1, 1, 1, -1)
    return device.new_tensor(data, wdtype, tt.TILE_LAYOUT, tt.DRAM_MEMORY_CONFIG)


def _check_shapes(input_tensor: Tensor, weight_tensor: Tensor, *, in_channels, out_channels, batch_size,
                  input_height, input_width, kernel, groups) -> None:
    shape = tuple(input_tensor.shape)
    if len(shape) != 4:
        raise RuntimeError(f"TT_FATAL: conv2d: input must be 4D ([1, 1, N*H*W, C] or [N, H, W, C]), got {list(shape)}")
    c = shape[-1]
    if shape[0] * shape[1] * shape[2] != batch_size * input_height * input_width:
        raise RuntimeError(f"TT_FATAL: conv2d: input {list(shape)} does not hold batch_size*input_height*input_width = "
                           f"{batch_size}*{input_height}*{input_width} rows")
    if c < in_channels:
        raise RuntimeError(f"TT_FATAL: conv2d: input has {c} channels, fewer than in_channels={in_channels}")
    if in_channels % groups or out_channels % groups:
        raise RuntimeError(f"TT_FATAL: conv2d: in_channels {in_channels} and out_channels {out_channels} must be "
                           f"divisible by groups {groups}")
    if weight_tensor._device is None:
        expected = (out_channels, in_channels // groups, kernel[0], kernel[1])
        if tuple(weight_tensor.shape) != expected:
            raise RuntimeError(f"TT_FATAL: conv2d: weight shape {list(weight_tensor.shape)} != [out_channels, "
                               f"in_channels/groups, kh, kw] = {list(expected)}")


def _choose_parallel(device: EmuDevice, cfg, input_tensor: Tensor, nhw: int, out_channels: int) -> Parallel:
    existing = parallel_of(input_tensor.memory_config()) if input_tensor._device is not None else None
    layout = cfg.shard_layout.name if cfg.shard_layout is not None else (
        existing.layout if existing else heuristic_layout(nhw, out_channels))
    if cfg.core_grid is not None and (cfg.override_sharding_config or cfg.override_output_sharding_config):
        box = cfg.core_grid.bounding_box()
        grid = (box.end.x + 1, box.end.y + 1)
        return Parallel(layout, grid, cfg.core_grid.num_cores())
    if existing is not None and existing.layout == layout:
        return existing
    return default_parallel(layout, device.target.grid, nhw, out_channels)


def conv2d(*, input_tensor, weight_tensor, device, in_channels, out_channels, batch_size, input_height, input_width,
           kernel_size, stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=1, dtype=None, bias_tensor=None,
           conv_config=None, compute_config=None, memory_config=None, slice_config=None, return_output_dim=False,
           return_weights_and_bias=False):
    if not isinstance(device, EmuDevice):
        raise TypeError("conv2d(): incompatible function arguments: device must be an open ttnn device")
    device.check_open()
    if not input_tensor.is_allocated():
        raise RuntimeError("TT_FATAL: conv2d: input tensor is not allocated (it was deallocated)")
    cfg = conv_config or tt.Conv2dConfig()
    if cfg.act_block_h_override % TILE:
        raise RuntimeError(f"Config Error: act_block_h_override ({cfg.act_block_h_override}) must be a multiple of 32 "
                           "(tile height).")
    kernel, strd, dil = _pair(kernel_size), _pair(stride), _pair(dilation)
    pads = _pads(padding)
    _check_shapes(input_tensor, weight_tensor, in_channels=in_channels, out_channels=out_channels,
                  batch_size=batch_size, input_height=input_height, input_width=input_width, kernel=kernel,
                  groups=groups)
    out_h = (input_height + pads[0] + pads[1] - dil[0] * (kernel[0] - 1) - 1) // strd[0] + 1
    out_w = (input_width + pads[2] + pads[3] - dil[1] * (kernel[1] - 1) - 1) // strd[1] + 1
    out_nhw = batch_size * out_h * out_w
    wdtype = _weights_dtype(cfg, weight_tensor)
    out_dtype = dtype or input_tensor.dtype
    out_layout = cfg.output_layout

    in_dram = input_tensor._device is None or input_tensor.memory_config().buffer_type == tt.BufferType.DRAM
    slice_type = slice_config.slice_type if slice_config is not None else None
    sliced = (slice_type is not None and slice_type != tt.Op2DSliceConfig.SliceTypeEnum.L1Full) or (
        slice_type is None and in_dram)
    parallel = _choose_parallel(device, cfg, input_tensor, out_nhw, out_channels)

    geometry = dict(batch=batch_size, input_hw=(input_height, input_width), kernel_size=kernel, stride=strd,
                    padding=(max(pads[0], pads[1]), max(pads[2], pads[3])), dilation=dil,
                    shard_layout=parallel.layout, grid=parallel.grid, num_cores=parallel.num_cores)
    fp32_acc = bool(compute_config.fp32_dest_acc_en) if compute_config is not None else False

    by_height = slice_type == tt.Op2DSliceConfig.SliceTypeEnum.DRAMSliceHeight
    conv_args = dict(
        **geometry, in_channels=in_channels, out_channels=out_channels, groups=groups,
        act_block_h=cfg.act_block_h_override, act_block_w_div=cfg.act_block_w_div,
        input_dtype=plan_dtype(input_tensor.dtype), weights_dtype=plan_dtype(wdtype),
        output_dtype=plan_dtype(out_dtype), enable_act_double_buffer=cfg.enable_act_double_buffer,
        enable_weights_double_buffer=cfg.enable_weights_double_buffer, fp32_dest_acc=fp32_acc,
        device_grid=device.target.grid, output_layout="ROW_MAJOR" if out_layout == tt.ROW_MAJOR_LAYOUT else "TILE",
        slice_type="DRAM_SLICE_HEIGHT" if by_height else "DRAM_SLICE_WIDTH")

    def l1(num_slices: int) -> cb_model.ConvL1:
        return cb_model.conv2d_l1(**conv_args, num_slices=num_slices)

    def cb_bytes(num_slices: int) -> int:
        return l1(num_slices).cb

    def halo(num_slices: int) -> int:
        return l1(num_slices).halo

    math = fidelity.conv_math_config(compute_config, input_tensor.dtype.name, wdtype.name)
    interm_round = _interm_round(math, out_dtype)
    operands_bf16 = {input_tensor.dtype.name, wdtype.name} <= fidelity.BF16_EXACT
    activation = _golden_activation(cfg.activation)
    native = fidelity.native_bf16(math, operands_bf16)
    # relu of bf16 values is exact in bf16, so a bf16 conv result needs no float32 copy before the rounding
    float_activation = activation is not None and getattr(cfg.activation, "op_type", None) != tt.UnaryOpType.RELU

    def compute(x, w, b=None):
        x = x.reshape(batch_size, input_height, input_width, -1)[..., :in_channels]
        x = x.to(torch.bfloat16) if native else x  # exact: the stored values are bf16 / bfloat8_b
        x = F.pad(x.permute(0, 3, 1, 2), (pads[2], pads[3], pads[0], pads[1]))
        y = fidelity.conv2d_values(x, w, None if b is None else b.reshape(-1), stride=strd, dilation=dil,
                                   groups=groups, math=math, operands_bf16=operands_bf16, interm_round=interm_round)
        y = activation(y.to(torch.float32) if float_activation else y) if activation is not None else y
        n, c, h, wd = y.shape
        return y.permute(0, 2, 3, 1).reshape(1, 1, n * h * wd, c)

    weights_dev = _device_weights(device, weight_tensor, wdtype, in_channels, out_channels, kernel)
    bias_dev = _device_bias(device, bias_tensor, wdtype, out_channels)
    owned = [t for t, given in ((weights_dev, weight_tensor), (bias_dev, bias_tensor)) if t is not None and t is not given]
    inputs = [input_tensor, weights_dev] + ([bias_dev] if bias_dev is not None else [])
    result = compute(*[t._data if t is not input_tensor else t.data for t in inputs])

    in_rows_shard = parallel.shard_shape(batch_size * input_height * input_width, in_channels)
    in_elem = 4 if input_tensor.dtype.name == "FLOAT32" else 2
    in_shard_bytes = in_rows_shard[0] * in_rows_shard[1] * in_elem
    config_bytes = align(2 * cdiv(out_nhw, parallel.num_cores) + 64, 16)
    config_kind = "DRAM" if cfg.config_tensors_in_dram else "L1_SMALL"
    try:
        if not sliced:
            with device.program("conv2d", cb_bytes(0)) as temps:
                device.temp(temps, config_kind, config_bytes)
                if parallel_of(input_tensor.memory_config()) != parallel or in_dram:
                    device.temp(temps, "L1", in_shard_bytes)  # resharded input
                if halo(0):
                    device.temp(temps, "L1", halo(0))
                mc = memory_config or parallel.memory_config(out_nhw, out_channels, out_layout == tt.TILE_LAYOUT)
                out = device.new_tensor(result, out_dtype, out_layout, mc)
        elif slice_config is not None and (parts := cb_model.conv2d_slices(**conv_args,
                                                                           num_slices=slice_config.num_slices)):
            out = device.new_tensor(result, out_dtype, out_layout, memory_config or tt.DRAM_MEMORY_CONFIG)
            config_bytes = align(2 * cdiv(cdiv(out_nhw, len(parts)), parallel.num_cores) + 64, 16)
            try:
                _run_slices(device, parts, config_kind, config_bytes)
            except DeviceMemoryError:
                device.memory.release(out._buffer)
                raise
        else:
            out = _run_sliced(device, slice_config, out_w, out_nhw, parallel, cb_bytes, halo, in_shard_bytes,
                              config_kind, config_bytes, out_dtype, out_channels, result, out_layout, memory_config)
    finally:
        if not return_weights_and_bias:
            for t in owned:
                device.memory.release(t._buffer)
    if cfg.deallocate_activation and input_tensor._device is not None and not in_dram:
        input_tensor.deallocate()
    device.record_step(compute, inputs, [out])

    extras: list = [out]
    if return_output_dim:
        extras.append((out_h, out_w))
    if return_weights_and_bias:
        extras.append((weights_dev, bias_dev))
    return out if len(extras) == 1 else tuple(extras)


def _run_slices(device, parts: list[cb_model.ConvSlice], config_kind: str, config_bytes: int) -> None:
    """A DRAM-sliced conv's programs, slice after slice, as real ttnn runs them (cb_model.ConvSlice;
    the same sequence as passes/l1_sim)."""
    banks = device.target.num_cores

    def alloc(size: int):
        return device.memory.allocate("L1", size * banks, size, banks)

    def move(buf, size: int):  # ttnn::move: free, then allocate again
        device.memory.release(buf)
        return alloc(size)

    for p in parts:
        with device.program("conv2d input slice", p.slice_cb):
            src = alloc(p.input)
        if p.reshard:
            with device.program("conv2d slice reshard"):
                copy = alloc(p.reshard)
            device.memory.release(src)
            src = move(copy, p.reshard)
        halo = None
        if p.halo:
            with device.program("halo", p.halo_cb):
                halo = alloc(p.halo)
            device.memory.release(src)
            halo = move(halo, p.halo)
        with device.program("conv2d slice", p.cb) as temps:
            device.temp(temps, config_kind, config_bytes)
            out = alloc(p.output)
        device.memory.release(halo if halo is not None else src)
        if p.untilize:
            with device.program("conv2d slice untilize"):
                untilized = alloc(p.untilize)
            device.memory.release(out)
            out = untilized
        device.memory.release(out)


def _run_sliced(device, slice_config, out_w, out_nhw, parallel, cb_bytes, halo, in_shard_bytes, config_kind,
                config_bytes, out_dtype, out_channels, result, out_layout, memory_config) -> Tensor:
    """DRAM-sliced conv: output in DRAM; per slice the L1 working set must fit."""
    out = device.new_tensor(result, out_dtype, out_layout, memory_config or tt.DRAM_MEMORY_CONFIG)
    out_elem = 1 if out_dtype.name == "BFLOAT8_B" else dtypes.TILE_BYTES[out_dtype.name] // (TILE * TILE)

    def working_set(n: int):
        out_shard = parallel.shard_shape(cdiv(out_nhw, n), out_channels)
        return (cb_bytes(n), [cdiv(in_shard_bytes, n), halo(n), out_shard[0] * out_shard[1] * out_elem],
                [(config_kind, config_bytes)])

    try:
        fit_slices(device, "conv2d", slice_config.num_slices if slice_config is not None else 0, out_w, working_set)
    except DeviceMemoryError:
        device.memory.release(out._buffer)
        raise
    return out


def prepare_conv_weights(*, weight_tensor, input_memory_config, input_layout, weights_format, in_channels, out_channels,
                         batch_size, input_height, input_width, kernel_size, stride, padding, dilation, has_bias, groups,
                         device, input_dtype, output_dtype=None, conv_config=None, compute_config=None,
                         slice_config=None):
    if weights_format != "OIHW":
        raise RuntimeError(f"TT_FATAL: prepare_conv_weights: weights_format {weights_format!r} is not supported (OIHW)")
    cfg = conv_config or tt.Conv2dConfig()
    wdtype = _weights_dtype(cfg, weight_tensor)
    with device.program("prepare_conv_weights"):
        return _device_weights(device, weight_tensor, wdtype, in_channels, out_channels, _pair(kernel_size))


def prepare_conv_bias(*, bias_tensor, input_memory_config, input_layout, in_channels, out_channels, batch_size,
                      input_height, input_width, kernel_size, stride, padding, dilation, groups, device, input_dtype,
                      output_dtype=None, conv_config=None, compute_config=None, slice_config=None):
    cfg = conv_config or tt.Conv2dConfig()
    wdtype = _weights_dtype(cfg, bias_tensor)
    with device.program("prepare_conv_bias"):
        return _device_bias(device, bias_tensor, wdtype, out_channels)
