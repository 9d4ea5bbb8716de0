"""conv2d, prepare_conv_weights, prepare_conv_bias: ttnn 0.81.1 semantics and numerics.

Values: the stored (already rounded) input and the weights rounded to `weights_dtype` as the device
stores them, multiplied as the matrix engine does under the compute_config (math-fidelity phases, bf16
or fp32 Dst accumulation per K block: runtime/emulator/fidelity.py), then the fused activation (ttnn's
golden) and the rounding to the output dtype.

Output layout as ttnn's: `output_layout`, except that 1x1 stride-1 unpadded convs that are not
width-sharded run as a matmul and write TILE whatever `output_layout` says.
Output placement as ttnn's: sharded by the conv's sharding in L1 (or `memory_config`), in DRAM when the
conv is DRAM-sliced (slice_config DRAM*, or None with a DRAM input). Memory is not modelled: real ttnn
on a mock device judges L1 (runtime/ttnn_mock.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from runtime.emulator import dtypes, fidelity
from runtime.emulator.device import EmuDevice
from runtime.emulator.sharding import Parallel, default_parallel, heuristic_layout, parallel_of
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


def _device_weights(device: EmuDevice, weight_tensor: Tensor, wdtype) -> Tensor:
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
    return device.new_tensor(rounded, wdtype, tt.TILE_LAYOUT, tt.DRAM_MEMORY_CONFIG, rounded=True)


def _device_bias(device: EmuDevice, bias_tensor: Tensor | None, wdtype) -> Tensor | None:
    if bias_tensor is None or bias_tensor._device is not None:
        return bias_tensor
    data = bias_tensor.data.reshape(1, 1, 1, -1)
    return device.new_tensor(data, wdtype, tt.TILE_LAYOUT, tt.DRAM_MEMORY_CONFIG)


def _check_shapes(
    input_tensor: Tensor,
    weight_tensor: Tensor,
    *,
    in_channels,
    out_channels,
    batch_size,
    input_height,
    input_width,
    kernel,
    groups,
) -> None:
    shape = tuple(input_tensor.shape)
    if len(shape) != 4:
        raise RuntimeError(f"TT_FATAL: conv2d: input must be 4D ([1, 1, N*H*W, C] or [N, H, W, C]), got {list(shape)}")
    c = shape[-1]
    if shape[0] * shape[1] * shape[2] != batch_size * input_height * input_width:
        raise RuntimeError(
            f"TT_FATAL: conv2d: input {list(shape)} does not hold batch_size*input_height*input_width = "
            f"{batch_size}*{input_height}*{input_width} rows"
        )
    if c < in_channels:
        raise RuntimeError(f"TT_FATAL: conv2d: input has {c} channels, fewer than in_channels={in_channels}")
    if in_channels % groups or out_channels % groups:
        raise RuntimeError(
            f"TT_FATAL: conv2d: in_channels {in_channels} and out_channels {out_channels} must be "
            f"divisible by groups {groups}"
        )
    if weight_tensor._device is None:
        expected = (out_channels, in_channels // groups, kernel[0], kernel[1])
        if tuple(weight_tensor.shape) != expected:
            raise RuntimeError(
                f"TT_FATAL: conv2d: weight shape {list(weight_tensor.shape)} != [out_channels, "
                f"in_channels/groups, kh, kw] = {list(expected)}"
            )


def _choose_parallel(device: EmuDevice, cfg, input_tensor: Tensor, nhw: int, out_channels: int) -> Parallel:
    existing = parallel_of(input_tensor.memory_config()) if input_tensor._device is not None else None
    layout = (
        cfg.shard_layout.name
        if cfg.shard_layout is not None
        else (existing.layout if existing else heuristic_layout(nhw, out_channels))
    )
    if cfg.core_grid is not None and (cfg.override_sharding_config or cfg.override_output_sharding_config):
        box = cfg.core_grid.bounding_box()
        grid = (box.end.x + 1, box.end.y + 1)
        return Parallel(layout, grid, cfg.core_grid.num_cores())
    if existing is not None and existing.layout == layout:
        return existing
    return default_parallel(layout, device.target.grid, nhw, out_channels)


def conv2d(
    *,
    input_tensor,
    weight_tensor,
    device,
    in_channels,
    out_channels,
    batch_size,
    input_height,
    input_width,
    kernel_size,
    stride=[1, 1],
    padding=[0, 0],
    dilation=[1, 1],
    groups=1,
    dtype=None,
    bias_tensor=None,
    conv_config=None,
    compute_config=None,
    memory_config=None,
    slice_config=None,
    return_output_dim=False,
    return_weights_and_bias=False,
):
    if not isinstance(device, EmuDevice):
        raise TypeError("conv2d(): incompatible function arguments: device must be an open ttnn device")
    device.check_open()
    if not input_tensor.is_allocated():
        raise RuntimeError("TT_FATAL: conv2d: input tensor is not allocated (it was deallocated)")
    cfg = conv_config or tt.Conv2dConfig()
    if cfg.act_block_h_override % TILE:
        raise RuntimeError(
            f"Config Error: act_block_h_override ({cfg.act_block_h_override}) must be a multiple of 32 (tile height)."
        )
    kernel, strd, dil = _pair(kernel_size), _pair(stride), _pair(dilation)
    pads = _pads(padding)
    _check_shapes(
        input_tensor,
        weight_tensor,
        in_channels=in_channels,
        out_channels=out_channels,
        batch_size=batch_size,
        input_height=input_height,
        input_width=input_width,
        kernel=kernel,
        groups=groups,
    )
    out_h = (input_height + pads[0] + pads[1] - dil[0] * (kernel[0] - 1) - 1) // strd[0] + 1
    out_w = (input_width + pads[2] + pads[3] - dil[1] * (kernel[1] - 1) - 1) // strd[1] + 1
    out_nhw = batch_size * out_h * out_w
    wdtype = _weights_dtype(cfg, weight_tensor)
    out_dtype = dtype or input_tensor.dtype
    parallel = _choose_parallel(device, cfg, input_tensor, out_nhw, out_channels)
    matmul = (
        kernel == (1, 1)
        and strd == (1, 1)
        and pads == (0, 0, 0, 0)
        and dil == (1, 1)
        and groups == 1
        and parallel.layout != "WIDTH_SHARDED"
    )
    out_layout = tt.TILE_LAYOUT if matmul else cfg.output_layout

    in_dram = input_tensor._device is None or input_tensor.memory_config().buffer_type == tt.BufferType.DRAM
    slice_type = slice_config.slice_type if slice_config is not None else None
    sliced = (slice_type is not None and slice_type != tt.Op2DSliceConfig.SliceTypeEnum.L1Full) or (
        slice_type is None and in_dram
    )
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
        x = x.permute(0, 3, 1, 2)
        if any(pads):  # F.pad copies even when it pads nothing (most convs here are unpadded 1x1)
            x = F.pad(x, (pads[2], pads[3], pads[0], pads[1]))
        y = fidelity.conv2d_values(
            x,
            w,
            None if b is None else b.reshape(-1),
            stride=strd,
            dilation=dil,
            groups=groups,
            math=math,
            operands_bf16=operands_bf16,
            interm_round=interm_round,
        )
        y = activation(y.to(torch.float32) if float_activation else y) if activation is not None else y
        n, c, h, wd = y.shape
        return y.permute(0, 2, 3, 1).reshape(1, 1, n * h * wd, c)

    weights_dev = _device_weights(device, weight_tensor, wdtype)
    bias_dev = _device_bias(device, bias_tensor, wdtype)
    inputs = [input_tensor, weights_dev] + ([bias_dev] if bias_dev is not None else [])
    result = compute(*[t._data if t is not input_tensor else t.data for t in inputs])

    if sliced:
        out = device.new_tensor(result, out_dtype, out_layout, memory_config or tt.DRAM_MEMORY_CONFIG)
    else:
        mc = memory_config or parallel.memory_config(out_nhw, out_channels, out_layout == tt.TILE_LAYOUT)
        out = device.new_tensor(result, out_dtype, out_layout, mc)
    if cfg.deallocate_activation and input_tensor._device is not None and not in_dram:
        input_tensor.deallocate()
    device.record_step(compute, inputs, [out])

    extras: list = [out]
    if return_output_dim:
        extras.append((out_h, out_w))
    if return_weights_and_bias:
        extras.append((weights_dev, bias_dev))
    return out if len(extras) == 1 else tuple(extras)


def prepare_conv_weights(
    *,
    weight_tensor,
    input_memory_config,
    input_layout,
    weights_format,
    in_channels,
    out_channels,
    batch_size,
    input_height,
    input_width,
    kernel_size,
    stride,
    padding,
    dilation,
    has_bias,
    groups,
    device,
    input_dtype,
    output_dtype=None,
    conv_config=None,
    compute_config=None,
    slice_config=None,
):
    if weights_format != "OIHW":
        raise RuntimeError(f"TT_FATAL: prepare_conv_weights: weights_format {weights_format!r} is not supported (OIHW)")
    cfg = conv_config or tt.Conv2dConfig()
    wdtype = _weights_dtype(cfg, weight_tensor)
    return _device_weights(device, weight_tensor, wdtype)


def prepare_conv_bias(
    *,
    bias_tensor,
    input_memory_config,
    input_layout,
    in_channels,
    out_channels,
    batch_size,
    input_height,
    input_width,
    kernel_size,
    stride,
    padding,
    dilation,
    groups,
    device,
    input_dtype,
    output_dtype=None,
    conv_config=None,
    compute_config=None,
    slice_config=None,
):
    cfg = conv_config or tt.Conv2dConfig()
    wdtype = _weights_dtype(cfg, bias_tensor)
    return _device_bias(device, bias_tensor, wdtype)
