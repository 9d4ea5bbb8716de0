"""The front end: Detectron2 model -> torch.export -> IR graph."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from converter.errors import UserError
from converter.model import build_model, load_config, with_crop_size
from converter.trace import trace_model
from tests.conftest import SMALL_SIZE

# Op counts of the exported ATen graph at 512x1024 (counted on torch.export's own graph, not by our lifter):
# 88 conv2d, 83 batch_norm, 81 relu, 16 add, 9 upsample, 6 cat, 2 pools, 2 dropout, 1 max_pool, 1 mul,
# plus the normalization (sub, div -> one channel_affine), the input and one output per head.
PANOPTIC_HISTOGRAM = {
    "add": 16,
    "batch_norm": 83,
    "channel_affine": 1,
    "concat": 6,
    "conv2d": 88,
    "global_avg_pool2d": 2,
    "input": 1,
    "max_pool2d": 1,
    "mul_scalar": 1,
    "output": 3,
    "relu": 81,
    "upsample": 9,
}


def test_panoptic_op_histogram(small_graphs):
    assert small_graphs["panoptic_deeplab"].histogram() == PANOPTIC_HISTOGRAM


def test_deeplab_v3_plus_is_the_semantic_branch(small_graphs):
    g = small_graphs["deeplab_v3_plus"]
    assert set(g.outputs) == {"sem_seg"}
    assert not [n for n in g if n.source.startswith("ins_embed_head")]
    # 88 convs minus the instance head's 18 (decoder 3+2+2, ASPP 6, center 3, offset 3... = 18).
    assert g.histogram()["conv2d"] == 70


def test_every_conv_of_the_model_is_in_the_ir(small_model, small_graphs):
    g = small_graphs["panoptic_deeplab"]
    convs = {name: m for name, m in small_model.named_modules() if isinstance(m, nn.Conv2d)}
    assert len(convs) == 88
    for name, conv in convs.items():
        node = g.node(name)
        assert node.op == "conv2d" and node.source == name
        a = node.attrs
        assert (a["in_channels"], a["out_channels"]) == (conv.in_channels, conv.out_channels)
        assert a["kernel_size"] == tuple(conv.kernel_size) and a["stride"] == tuple(conv.stride)
        assert a["padding"] == tuple(conv.padding) and a["dilation"] == tuple(conv.dilation)
        assert a["groups"] == conv.groups and a["activation"] is None
        assert torch.equal(node.params["weight"], conv.weight)
        assert node.params["weight"].data_ptr() != conv.weight.data_ptr()  # a clone, not a view
        assert ("bias" in node.params) == (conv.bias is not None)


def test_batchnorm_params_and_normalization(small_model, small_graphs):
    g = small_graphs["panoptic_deeplab"]
    bn = small_model.backbone.res3[1].conv2.norm
    node = g.node("backbone.res3.1.conv2.norm")
    assert node.op == "batch_norm" and node.attrs["eps"] == bn.eps
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(node.params[key], getattr(bn, key)), key
    affine = g.node(g.node("backbone.stem.conv1").inputs[0])
    assert affine.op == "channel_affine" and affine.inputs == ("input",)
    mean, std = small_model.pixel_mean.flatten(), small_model.pixel_std.flatten()
    torch.testing.assert_close(affine.params["scale"], 1 / std)
    torch.testing.assert_close(affine.params["shift"], -mean / std)


def test_names_shapes_outputs_and_meta(small_graph, variant):
    g = small_graph
    names = [n.name for n in g]
    assert len(names) == len(set(names))
    assert g.node("backbone.res2.0.relu").source == "backbone.res2.0"
    assert g.node("backbone.res2.0.add").inputs == ("backbone.res2.0.conv3.norm", "backbone.res2.0.shortcut.norm")
    h, w = SMALL_SIZE
    for head, node in g.outputs.items():
        assert g.node(node).op == "output"
        channels = {"sem_seg": 19, "center": 1, "offset": 2}[head]
        assert g.node(node).out.shape == (1, channels, h, w)
    assert g.meta["variant"] == variant and g.meta["input_size"] == SMALL_SIZE
    assert g.meta["config"] == "panoptic_deeplab_R_52_os16_mg124_cityscapes"
    assert "RGB" in g.meta["host_preprocess"] and g.meta["host_postprocess"]
    heads = ["sem_seg_head"] + (["ins_embed_head"] if variant == "panoptic_deeplab" else [])
    assert g.meta["identity_ops"] == [
        {
            "op": "aten.dropout.default",
            "source": f"{h}.decoder.res5.project_conv",
            "why": "identity in eval mode; removed",
        }
        for h in heads
    ]
    taps = g.meta["taps"]
    assert taps["sem_seg_head.logits"] == "sem_seg_head.predictor"
    assert g.node(taps["backbone.res5"]).out.shape == (1, 2048, h // 16, w // 16)
    assert g.node(taps["sem_seg_head.aspp"]).out.shape == (1, 256, h // 16, w // 16)
    if variant == "panoptic_deeplab":
        assert g.node("ins_embed_head.mul_scalar").attrs == {"scalar": 4.0}
        assert g.node(taps["ins_embed_head.offset"]).out.shape == (1, 2, h // 4, w // 4)


def test_upsamples_are_integer_scales(small_graph):
    scales = sorted(n.attrs["scale_factor"] for n in small_graph if n.op == "upsample")
    assert all(
        n.attrs["mode"] == "bilinear" and n.attrs["align_corners"] is False for n in small_graph if n.op == "upsample"
    )
    assert (8, 16) in scales and (4, 4) in scales and (2, 2) in scales


def test_tracing_is_deterministic(small_model, small_graphs):
    again = trace_model(small_model, "panoptic_deeplab", SMALL_SIZE)
    first = small_graphs["panoptic_deeplab"]
    assert [(n.name, n.op, n.inputs, n.out, n.source, n.attrs) for n in again] == [
        (n.name, n.op, n.inputs, n.out, n.source, n.attrs) for n in first
    ]
    assert again.meta == first.meta


def test_unsupported_op_names_op_and_module(small_cfg):
    model = build_model(small_cfg)
    model.sem_seg_head.head[0].activation = torch.tanh
    with pytest.raises(UserError) as e:
        trace_model(model, "deeplab_v3_plus", SMALL_SIZE)
    message = str(e.value)
    assert "aten.tanh" in message and "sem_seg_head.head.0" in message and "\n" not in message


def test_non_integer_upsample_lifts_to_resample():
    """ttnn's upsample takes integer scales only: a bilinear resize by any other is a `resample`."""
    cfg = load_config()
    cfg.INPUT.CROP.ENABLED = False  # adaptive (global) ASPP pooling: any input size passes Detectron2
    g = trace_model(build_model(cfg), "deeplab_v3_plus", (136, 256))  # res3 17 rows, res5 9 rows
    resamples = {n.name: n for n in g if n.op == "resample"}
    assert resamples and all(n.attrs == {"kind": "bilinear", "program": "one_row"} for n in resamples.values())
    for n in resamples.values():
        (h, w), (oh, ow) = g.node(n.inputs[0]).out.shape[2:], n.out.shape[2:]
        assert n.params["rows"].shape == (oh, h) and n.params["cols"].shape == (ow, w)
        assert oh % h or ow % w


def test_adaptive_pooling_lowers_to_global_average(small_cfg):
    cfg = small_cfg.clone()
    cfg.INPUT.CROP.ENABLED = False
    g = trace_model(build_model(cfg), "deeplab_v3_plus", SMALL_SIZE)
    assert g.histogram()["global_avg_pool2d"] == 1


def test_size_the_pooling_window_does_not_tile_is_a_user_error(small_cfg):
    model = build_model(with_crop_size(load_config(), SMALL_SIZE))
    with pytest.raises(UserError) as e:
        trace_model(model, "panoptic_deeplab", (192, 256))
    assert "192x256" in str(e.value) and "\n" not in str(e.value)


def test_unknown_variant_is_a_user_error(small_model):
    with pytest.raises(UserError, match="variant"):
        trace_model(small_model, "mask_rcnn", SMALL_SIZE)
