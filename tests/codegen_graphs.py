"""Small hand-built, hand-planned graphs for the code generator and runtime tests.

They stand in for the front end and the passes: a tiny network with one of each op the generator
lowers (affine, conv with and without ReLU, max pool, residual add, concat, bilinear upsample,
global average pool, scalar multiply), with an OpPlan on every node. The plans are legal for real
ttnn: e.g. the 4-class predictor is widened to 32 channels (passes/pad_channels.py) because ttnn's
bilinear upsample needs channels % 32 == 0.
"""

from __future__ import annotations

import torch

from converter.ir import Graph, Node, TensorInfo
from passes.layout_plan import layout_plan
from passes.pad_channels import pad_channels
from passes.plan import (
    DRAM_INTERLEAVED,
    L1_INTERLEAVED,
    Buffer,
    ConvConfig,
    DeviceDtype,
    MemoryLayout,
    OpPlan,
    Placement,
    SliceType,
)

DRAM = DRAM_INTERLEAVED
L1 = L1_INTERLEAVED


def height_sharded(rows: int, channels: int, cores: int = 8, grid: tuple[int, int] = (5, 4)) -> Placement:
    return Placement(Buffer.L1, MemoryLayout.HEIGHT_SHARDED, grid=grid, num_cores=cores, shard_shape=(rows, channels))


def plan(dtype: str = "bfloat16", output: Placement = L1, **kw) -> OpPlan:
    return OpPlan(
        dtype=DeviceDtype(dtype),
        weights_dtype=kw.pop("weights_dtype", None),
        math_fidelity=kw.pop("math_fidelity", "HiFi2"),
        fp32_dest_acc=kw.pop("fp32_dest_acc", False),
        output=output,
        **kw,
    )


def conv_config(
    layout: str = "HEIGHT_SHARDED", slice_type: str = "L1_FULL", num_slices: int = 0, act_block_h: int = 0
) -> ConvConfig:
    return ConvConfig(
        shard_layout=MemoryLayout(layout),
        slice_type=SliceType(slice_type),
        num_slices=num_slices,
        act_block_h=act_block_h,
        act_block_w_div=1,
        enable_act_double_buffer=False,
        enable_weights_double_buffer=False,
        why="test",
    )


def _conv(name, src, cin, cout, hw, k=3, stride=1, dilation=1, relu=True, seed=0, **plan_kw) -> Node:
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    pad = dilation * (k // 2)
    oh, ow = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1, (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    weight = torch.randn(cout, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
    bias = torch.randn(cout, generator=g) * 0.1
    p = plan(
        weights_dtype=plan_kw.pop("weights_dtype", "bfloat8_b"), conv=plan_kw.pop("conv", conv_config()), **plan_kw
    )
    return Node(
        name,
        "conv2d",
        (src,),
        TensorInfo((1, cout, oh, ow)),
        name,
        attrs=dict(
            in_channels=cin,
            out_channels=cout,
            kernel_size=(k, k),
            stride=(stride, stride),
            padding=(pad, pad),
            dilation=(dilation, dilation),
            groups=1,
            activation="relu" if relu else None,
        ),
        params={"weight": weight, "bias": bias},
        plan=p,
    )


def tiny_graph(h: int = 64, w: int = 128, predictor_kernel: int = 1) -> Graph:
    """input -> affine -> stem conv -> max pool -> bottleneck-ish block -> ASPP-ish pool branch -> head.

    The semantic predictor is a 1x1 conv (run by ttnn as a matmul) unless `predictor_kernel` says otherwise."""
    mean = torch.tensor([123.675, 116.28, 103.53])
    std = torch.tensor([58.395, 57.12, 57.375])
    h4, w4 = h // 4, w // 4
    rows4 = h4 * w4
    nodes = [
        Node("input", "input", (), TensorInfo((1, 3, h, w)), "input", plan=plan(output=DRAM)),
        Node(
            "normalize",
            "channel_affine",
            ("input",),
            TensorInfo((1, 3, h, w)),
            "pixel_mean_std",
            params={"scale": 1.0 / std, "shift": -mean / std},
            plan=plan(output=DRAM, deallocate_after=("input",)),
        ),
        _conv(
            "backbone.stem.conv1",
            "normalize",
            3,
            32,
            (h, w),
            stride=2,
            seed=1,
            output=DRAM,
            conv=conv_config(slice_type="DRAM_SLICE_WIDTH", num_slices=2),
            deallocate_after=("normalize",),
        ),
        Node(
            "backbone.stem.pool",
            "max_pool2d",
            ("backbone.stem.conv1",),
            TensorInfo((1, 32, h4, w4)),
            "backbone.stem",
            attrs=dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=False),
            plan=plan(output=height_sharded(rows4 // 8, 32), deallocate_after=("backbone.stem.conv1",)),
        ),
        _conv(
            "backbone.res2.0.conv1",
            "backbone.stem.pool",
            32,
            32,
            (h4, w4),
            k=1,
            seed=2,
            output=height_sharded(rows4 // 8, 32),
        ),
        _conv(
            "backbone.res2.0.conv2",
            "backbone.res2.0.conv1",
            32,
            32,
            (h4, w4),
            relu=False,
            seed=3,
            output=height_sharded(rows4 // 8, 32),
            deallocate_after=("backbone.res2.0.conv1",),
            spill_before=(("backbone.stem.pool", DRAM),),
        ),
        Node(
            "backbone.res2.0.add",
            "add",
            ("backbone.res2.0.conv2", "backbone.stem.pool"),
            TensorInfo((1, 32, h4, w4)),
            "backbone.res2.0",
            attrs=dict(activation="relu"),
            plan=plan(
                output=height_sharded(rows4 // 8, 32),
                reshard_inputs=(("backbone.stem.pool", height_sharded(rows4 // 8, 32)),),
                deallocate_after=("backbone.res2.0.conv2", "backbone.stem.pool"),
            ),
        ),
        Node(
            "sem_seg_head.decoder.res5.project_conv.pool",
            "global_avg_pool2d",
            ("backbone.res2.0.add",),
            TensorInfo((1, 32, 1, 1)),
            "sem_seg_head.decoder.res5.project_conv.convs.4",
            attrs={},
            plan=plan(output=DRAM),
        ),
        _conv(
            "sem_seg_head.decoder.res5.project_conv.pool_conv",
            "sem_seg_head.decoder.res5.project_conv.pool",
            32,
            32,
            (1, 1),
            k=1,
            seed=4,
            output=height_sharded(32, 32, cores=1),
            weights_dtype="bfloat16",
            deallocate_after=("sem_seg_head.decoder.res5.project_conv.pool",),
        ),
        Node(
            "sem_seg_head.decoder.res5.project_conv.pool_up",
            "upsample",
            ("sem_seg_head.decoder.res5.project_conv.pool_conv",),
            TensorInfo((1, 32, h4, w4)),
            "sem_seg_head.decoder.res5.project_conv.convs.4",
            attrs=dict(scale_factor=(h4, w4), mode="bilinear", align_corners=False),
            plan=plan(
                output=height_sharded(32, 32, cores=rows4 // 32),  # bilinear writes height shards
                deallocate_after=("sem_seg_head.decoder.res5.project_conv.pool_conv",),
            ),
        ),
        Node(
            "sem_seg_head.decoder.res5.project_conv.cat",
            "concat",
            ("backbone.res2.0.add", "sem_seg_head.decoder.res5.project_conv.pool_up"),
            TensorInfo((1, 64, h4, w4)),
            "sem_seg_head.decoder.res5.project_conv",
            attrs=dict(dim=1),
            plan=plan(
                output=DRAM,
                reshard_inputs=(
                    ("backbone.res2.0.add", DRAM),
                    ("sem_seg_head.decoder.res5.project_conv.pool_up", DRAM),
                ),
                deallocate_after=("sem_seg_head.decoder.res5.project_conv.pool_up",),
            ),
        ),
        _conv(
            "sem_seg_head.predictor",
            "sem_seg_head.decoder.res5.project_conv.cat",
            64,
            4,
            (h4, w4),
            k=predictor_kernel,
            relu=False,
            seed=5,
            output=height_sharded(rows4 // 8, 32),
            weights_dtype="float32",
            math_fidelity="HiFi4",
            fp32_dest_acc=True,
            deallocate_after=("sem_seg_head.decoder.res5.project_conv.cat",),
        ),
        Node(
            "sem_seg_head.upsample",
            "upsample",
            ("sem_seg_head.predictor",),
            TensorInfo((1, 4, h, w)),
            "sem_seg_head",
            attrs=dict(scale_factor=(4, 4), mode="bilinear", align_corners=False),
            plan=plan(
                output=height_sharded(-(-h * w // (32 * 20)) * 32, 32, cores=20),
                deallocate_after=("sem_seg_head.predictor",),
            ),
        ),
        Node(
            "ins_embed_head.offset_scale",
            "mul_scalar",
            ("backbone.res2.0.add",),
            TensorInfo((1, 32, h4, w4)),
            "ins_embed_head",
            attrs=dict(scalar=4),
            plan=plan(output=DRAM, deallocate_after=("backbone.res2.0.add",)),
        ),
    ]
    graph = Graph(
        tuple(nodes),
        outputs={"sem_seg": "sem_seg_head.upsample", "offset": "ins_embed_head.offset_scale"},
        meta={"variant": "tiny_net", "taps": {"res2": "backbone.res2.0.add"}},
    )
    return layout_plan(pad_channels(graph))  # channels and tensor layouts, as the passes plan them
