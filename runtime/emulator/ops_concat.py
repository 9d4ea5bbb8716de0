"""concat, values from ttnn's golden (including grouped channel interleaving)."""

from __future__ import annotations

from runtime.emulator.device import require_device_tensor
from runtime.ttnn_host import import_ttnn

tt = import_ttnn()


def _output_memory_config(tensors, dim: int):
    """Height-sharded inputs concatenated along channels give shards as wide as the inputs' together."""
    mc = tensors[0].memory_config()
    if not mc.is_sharded():
        return mc
    spec = mc.shard_spec
    rank = len(tuple(tensors[0].shape))
    if mc.memory_layout == tt.TensorMemoryLayout.HEIGHT_SHARDED and dim % rank == rank - 1:
        width = sum(t.memory_config().shard_spec.shape[1] for t in tensors)
        return tt.MemoryConfig(
            mc.memory_layout, mc.buffer_type, tt.ShardSpec(spec.grid, [spec.shape[0], width], spec.orientation)
        )
    raise RuntimeError(
        "emulator: concat of sharded inputs is emulated only for HEIGHT_SHARDED inputs along the "
        "last dim; pass memory_config= for other cases"
    )


def concat(tensors, dim=0, *, memory_config=None, output_tensor=None, groups=1, sub_core_grids=None):
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("TT_FATAL: concat needs at least one tensor")
    device = require_device_tensor("concat", *tensors)
    first = tensors[0]
    rank = len(tuple(first.shape))
    d = dim % rank
    for t in tensors[1:]:
        s0, s1 = tuple(first.shape), tuple(t.shape)
        if len(s1) != rank or any(a != b for i, (a, b) in enumerate(zip(s0, s1, strict=True)) if i != d):
            raise RuntimeError(f"TT_FATAL: concat: shapes {list(s0)} and {list(s1)} differ outside dim {dim}")
        if t.layout != first.layout:
            raise RuntimeError("TT_FATAL: concat: all inputs must have the same layout")
        if t.dtype != first.dtype:
            raise RuntimeError("TT_FATAL: concat: all inputs must have the same dtype")
        if t.is_sharded() != first.is_sharded():
            raise RuntimeError("TT_FATAL: concat: inputs must be all sharded or all interleaved")
    if groups > 1 and (
        len(tensors) != 2
        or any(t.memory_config().memory_layout != tt.TensorMemoryLayout.HEIGHT_SHARDED for t in tensors)
    ):
        raise RuntimeError("TT_FATAL: concat: groups > 1 is only supported for two height sharded input tensors")
    golden = tt.get_golden_function(tt.concat)

    def compute(*datas):
        return golden(list(datas), dim, groups=groups)

    result = compute(*[t.data for t in tensors])
    out = device.new_tensor(result, first.dtype, first.layout, memory_config or _output_memory_config(tensors, dim))
    device.record_step(compute, tensors, [out])
    return out
