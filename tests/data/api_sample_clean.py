"""A clean TTNN module using the real 0.81.1 API (no problems expected)."""
import ttnn

CONV_CONFIG = ttnn.Conv2dConfig(
    weights_dtype=ttnn.bfloat8_b,
    activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU),
    shard_layout=ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
    act_block_h_override=64,
    deallocate_activation=True,
    enable_act_double_buffer=False,
)
COMPUTE = ttnn.WormholeComputeKernelConfig(math_fidelity=ttnn.MathFidelity.HiFi2, fp32_dest_acc_en=False)
SLICE = ttnn.Conv2dSliceConfig(slice_type=ttnn.Conv2dDRAMSliceWidth, num_slices=2)
SHARDED = ttnn.MemoryConfig(
    ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
    ttnn.BufferType.L1,
    ttnn.ShardSpec(
        ttnn.CoreRangeSet([ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(4, 3))]),
        [1024, 64],
        ttnn.ShardOrientation.ROW_MAJOR,
    ),
)
GRID_CONFIG = ttnn.create_sharded_memory_config((1, 1, 20480, 64), ttnn.CoreGrid(x=5, y=4), ttnn.ShardStrategy.HEIGHT)


def open_device():
    return ttnn.open_device(device_id=0, l1_small_size=32768, trace_region_size=1 << 20, num_command_queues=1)


def forward(device, x, w, b):
    x = ttnn.to_device(x, device, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    y, (h, wd) = ttnn.conv2d(
        input_tensor=x, weight_tensor=w, bias_tensor=b, device=device, in_channels=3, out_channels=64,
        batch_size=1, input_height=128, input_width=256, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1),
        dilation=(1, 1), groups=1, conv_config=CONV_CONFIG, compute_config=COMPUTE, slice_config=SLICE,
        return_output_dim=True,
    )
    y = ttnn.to_memory_config(y, SHARDED)
    p = ttnn.max_pool2d(y, 1, h, wd, 64, [3, 3], [2, 2], [1, 1], [1, 1], memory_config=ttnn.L1_MEMORY_CONFIG)
    s = ttnn.add(p, p, activations=[ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)])
    g = ttnn.global_avg_pool2d(ttnn.reshape(s, (1, 32, 64, 64)))
    u = ttnn.upsample(ttnn.to_layout(s, ttnn.ROW_MAJOR_LAYOUT), 2, mode="nearest")
    c = ttnn.concat([u, u], dim=-1, memory_config=ttnn.L1_MEMORY_CONFIG)
    ttnn.deallocate(y)
    tid = ttnn.begin_trace_capture(device, cq_id=0)
    ttnn.end_trace_capture(device, tid, cq_id=0)
    ttnn.execute_trace(device, tid, cq_id=0, blocking=True)
    ttnn.release_trace(device, tid)
    return ttnn.to_torch(ttnn.from_device(c)), g
