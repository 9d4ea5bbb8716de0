"""upsample (nearest, bilinear) with ttnn 0.81.1's run-time checks; values from ttnn's golden."""

from __future__ import annotations

from runtime.emulator.device import require_device_tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()


def _scales(scale_factor) -> tuple[float, float]:
    if isinstance(scale_factor, (int, float)):
        return scale_factor, scale_factor
    s = list(scale_factor)
    if len(s) != 2:
        raise TypeError("upsample(): scale_factor must be a number or a pair (scale_h, scale_w)")
    return s[0], s[1]


def _output_memory_config(mc, sh: int, sw: int):
    """Sharded outputs keep the grid; every core's rows grow by sh*sw."""
    if not mc.is_sharded():
        return mc
    spec = mc.shard_spec
    h, w = spec.shape
    return tt.MemoryConfig(
        mc.memory_layout, mc.buffer_type, tt.ShardSpec(spec.grid, [h * sh * sw, w], spec.orientation)
    )


def upsample(input_tensor, scale_factor, *, mode="nearest", memory_config=None, compute_kernel_config=None):
    device = require_device_tensor("upsample", input_tensor)
    shape = tuple(input_tensor.shape)
    if len(shape) != 4:
        raise RuntimeError(f"TT_FATAL: upsample: input must be [N, H, W, C], got {list(shape)}")
    if mode not in ("nearest", "bilinear"):
        raise RuntimeError(f"TT_FATAL: upsample: mode {mode!r} is not supported (nearest, bilinear)")
    sh, sw = _scales(scale_factor)
    mc = input_tensor.memory_config()
    if mode == "bilinear":
        if int(sh) != sh or int(sw) != sw:
            raise RuntimeError(f"TT_FATAL: bilinear mode requires integer scale factors, got ({sh}, {sw})")
        if not mc.is_sharded():
            raise RuntimeError("TT_FATAL: Bilinear upsample requires sharded input tensor")
        if mc.memory_layout != tt.TensorMemoryLayout.HEIGHT_SHARDED:
            raise RuntimeError("TT_FATAL: Bilinear upsample requires HEIGHT_SHARDED input tensor")
        if input_tensor.dtype != tt.bfloat16:
            raise RuntimeError("TT_FATAL: Bilinear upsample requires BFLOAT16 input")
        if shape[-1] % 32:
            raise RuntimeError(f"TT_FATAL: in_channels % 32 == 0 (bilinear upsample of {shape[-1]} channels)")
        if memory_config is not None and not memory_config.is_sharded():  # real ttnn: "bad optional access"
            raise RuntimeError("TT_FATAL: bilinear upsample writes a sharded output: memory_config must be sharded")
        if compute_kernel_config is not None and compute_kernel_config.fp32_dest_acc_en:
            raise RuntimeError("TT_FATAL: fp32_dest_acc_en as true not supported for upsample bilinear")
    elif input_tensor.layout != tt.ROW_MAJOR_LAYOUT:
        raise RuntimeError("TT_FATAL: Only row-major layout is currently supported in nearest upsample")
    golden = tt.get_golden_function(tt.upsample)
    scale = (int(sh), int(sw)) if int(sh) == sh and int(sw) == sw else (sh, sw)

    def compute(x):
        return golden(x, scale, mode=mode)

    result = compute(input_tensor.data)
    out_mc = memory_config or _output_memory_config(mc, int(sh), int(sw))
    out = device.new_tensor(result, input_tensor.dtype, input_tensor.layout, out_mc)
    device.record_step(compute, [input_tensor], [out])
    return out
