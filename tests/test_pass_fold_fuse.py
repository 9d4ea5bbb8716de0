"""fold_batchnorm and fuse: structure of the rewritten graph, and outputs preserved in fp32."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from passes.fold_batchnorm import fold_batchnorm
from passes.fuse import fuse
from tests.pass_graphs import GraphBuilder, evaluate


def _resblock(seed=0, bias=False, eps=1e-5):
    b = GraphBuilder((1, 8, 12, 16), seed)
    c1 = b.bn("bn1", b.conv("conv1", "input", 8, bias=bias), eps)
    r1 = b.relu("relu1", c1)
    c2 = b.bn("bn2", b.conv("conv2", r1, 8, bias=bias), eps)
    s = b.relu("relu2", b.add("add", c2, "input"))
    return b.graph({"out": s})


def test_fold_removes_every_bn_and_keeps_conv_names():
    g = fold_batchnorm(_resblock())
    assert [n.op for n in g.nodes] == ["input", "conv2d", "relu", "conv2d", "add", "relu"]
    assert g.node("relu1").inputs == ("conv1",) and g.node("add").inputs == ("conv2", "input")
    assert "bias" in g.node("conv1").params


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), bias=st.booleans(), eps=st.sampled_from([1e-5, 1e-3]))
def test_fold_preserves_outputs_in_fp32(seed, bias, eps):
    g = _resblock(seed, bias, eps)
    x = torch.randn(1, 8, 12, 16, generator=torch.Generator().manual_seed(seed))
    want = evaluate(g, x)["out"]
    got = evaluate(fold_batchnorm(g), x)["out"]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bn_after_shared_conv_is_not_folded():
    b = GraphBuilder((1, 4, 8, 8))
    c = b.conv("conv", "input", 4)
    b.bn("bn", c)
    b.relu("side", c)  # conv has a second reader: folding would change it
    g = fold_batchnorm(b.graph({"a": "bn", "b": "side"}))
    assert [n.op for n in g.nodes].count("batch_norm") == 1


def test_fuse_relu_into_conv_and_add():
    g = fuse(fold_batchnorm(_resblock()))
    assert [n.op for n in g.nodes] == ["input", "conv2d", "conv2d", "add"]
    assert g.node("conv1").attrs["activation"] == "relu"
    assert g.node("conv2").attrs["activation"] is None
    assert g.node("add").attrs["activation"] == "relu"
    assert g.outputs == {"out": "add"}


def test_fuse_keeps_relu_when_producer_has_other_readers():
    b = GraphBuilder((1, 4, 8, 8))
    c = b.conv("conv", "input", 4)
    r = b.relu("relu", c)
    s = b.add("add", r, c)
    g = fuse(b.graph({"out": s}))
    assert [n.op for n in g.nodes] == ["input", "conv2d", "relu", "add"]


def test_output_scale_folds_through_bilinear_upsample():
    b = GraphBuilder((1, 4, 8, 8), seed=3)
    c = b.conv("offset_predictor", "input", 2, k=1, padding=0)
    m = b.mul("scale", b.upsample("up", c, 4), 4.0)
    g0 = b.graph({"offset": m})
    g = fuse(g0)
    assert [n.op for n in g.nodes] == ["input", "conv2d", "upsample"] and g.outputs == {"offset": "up"}
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(evaluate(g, x)["offset"], evaluate(g0, x)["offset"], rtol=1e-5, atol=1e-5)
