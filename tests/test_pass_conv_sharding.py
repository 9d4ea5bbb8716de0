"""conv_sharding: the preferred sharding follows the shape rules; the ladder always ends in a fit."""

import pytest

from converter.errors import UserError
from passes.conv_sharding import conv_sharding
from passes.dtype_policy import dtype_policy
from passes.overrides import parse_overrides
from passes.targets import get_target
from tests.pass_graphs import GraphBuilder

BH20 = get_target("blackhole-20")


def _plan_one(shape, out_channels, k=3, stride=1, dilation=1, target=BH20, overrides=None):
    b = GraphBuilder(shape)
    b.conv("c", "input", out_channels, k=k, stride=stride, dilation=dilation)
    g = dtype_policy(b.graph({"out": "c"}))
    return conv_sharding(g, target, overrides=overrides).node("c").plan.conv


def test_high_resolution_64_channels_is_height_sharded_in_l1():
    c = _plan_one((1, 64, 128, 256), 64)  # H*W = 32768
    assert (c.shard_layout, c.slice_type) == ("HEIGHT_SHARDED", "L1_FULL")
    assert c.num_cores == 20 and c.l1_bytes_per_core <= BH20.l1_budget()


def test_sixteenth_resolution_2048_channels_is_block_or_width_sharded():
    c = _plan_one((1, 2048, 32, 64), 256, k=1)
    assert c.shard_layout in ("BLOCK_SHARDED", "WIDTH_SHARDED")
    assert c.slice_type == "L1_FULL"


def test_one_pixel_conv_is_width_sharded():
    c = _plan_one((1, 2048, 1, 1), 256, k=1)
    assert c.shard_layout == "WIDTH_SHARDED"


def test_tensor_that_cannot_fit_goes_to_dram_slicing():
    # stem conv on a full 512x1024 image: the input alone is ~32 MB padded, 1.6 MB per core
    c = _plan_one((1, 3, 512, 1024), 64, stride=2)
    assert c.slice_type.startswith("DRAM_SLICE") and c.num_slices >= 2
    assert c.l1_bytes_per_core <= BH20.l1_budget()
    assert "L1_FULL" in c.rung and "> budget" in c.rung  # records why L1_FULL was not enough


def test_dilated_aspp_conv_fits_on_every_target():
    for name in ("blackhole-20", "blackhole-p150", "wormhole-n150"):
        t = get_target(name)
        c = _plan_one((1, 2048, 32, 64), 256, k=3, dilation=18, target=t)
        assert c.l1_bytes_per_core <= t.l1_budget()


def test_override_pins_sharding_and_slicing():
    o = parse_overrides({"layers": {"c": {"sharding": "BLOCK_SHARDED",
                                          "slicing": {"type": "DRAM_SLICE_WIDTH", "num_slices": 4}}}})
    c = _plan_one((1, 64, 128, 256), 64, overrides=o)
    assert (c.shard_layout, c.slice_type, c.num_slices) == ("BLOCK_SHARDED", "DRAM_SLICE_WIDTH", 4)


def test_impossible_override_is_a_user_error_naming_the_layer():
    o = parse_overrides({"layers": {"c": {"slicing": {"type": "L1_FULL"}}}})
    with pytest.raises(UserError, match="'c'"):
        _plan_one((1, 3, 512, 1024), 64, stride=2, overrides=o)
