"""conv_sharding: legal configs ranked by the cost model; the cheapest that fits wins, always a fit."""

import dataclasses

import pytest

from converter.errors import UserError
from hardware.targets import get_target
from passes import cost_model
from passes.conv_sharding import (
    LAYOUTS,
    ConvShape,
    conv_cores,
    conv_input_placement,
    conv_output_placement,
    conv_sharding,
    working_set,
)
from passes.dtype_policy import dtype_policy
from passes.overrides import parse_overrides
from passes.plan import ConvConfig, Placement
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


def test_dilated_conv_whose_block_sharding_fits_only_dram_sliced_runs_l1_resident_in_channel_groups():
    """The ASPP's dilation-18 conv at 1/16 on the full P150: block-sharded it fits only DRAM-sliced (its
    halo), two input-channel groups fit L1-resident and model cheapest, as Tenstorrent runs it; a 1x1 conv
    (no halo to split) is not offered groups."""
    p150 = get_target("blackhole-p150")
    c = _plan_one((1, 2048, 32, 64), 256, k=3, dilation=18, target=p150)
    assert (c.channel_slices, c.slice_type) == (2, "L1_FULL")
    assert "L1_FULL BLOCK_SHARDED needs" in c.why  # the whole conv block-sharded does not fit L1
    assert _plan_one((1, 2048, 32, 64), 256, k=1, target=p150).channel_slices == 1


def test_one_pixel_conv_is_width_sharded():
    c = _plan_one((1, 2048, 1, 1), 256, k=1)
    assert c.shard_layout == "WIDTH_SHARDED"


def test_tensor_that_cannot_fit_goes_to_dram_slicing():
    # stem conv on a full 512x1024 image: the input alone is ~32 MB padded, 1.6 MB per core
    c = _plan_one((1, 3, 512, 1024), 64, stride=2)
    assert c.slice_type.startswith("DRAM_SLICE") and c.num_slices >= 2
    assert c.l1_bytes_per_core <= BH20.l1_budget()
    assert "L1_FULL" in c.why and "> budget" in c.why  # records why L1_FULL was not enough


def test_dilated_aspp_conv_fits_on_every_target():
    for name in ("blackhole-20", "blackhole-p150", "wormhole-n150"):
        t = get_target(name)
        c = _plan_one((1, 2048, 32, 64), 256, k=3, dilation=18, target=t)
        assert c.l1_bytes_per_core <= t.l1_budget()


def test_override_pins_sharding_and_slicing():
    o = parse_overrides(
        {"layers": {"c": {"sharding": "BLOCK_SHARDED", "slicing": {"type": "DRAM_SLICE_WIDTH", "num_slices": 4}}}}
    )
    c = _plan_one((1, 64, 128, 256), 64, overrides=o)
    assert (c.shard_layout, c.slice_type, c.num_slices) == ("BLOCK_SHARDED", "DRAM_SLICE_WIDTH", 4)


def test_impossible_override_is_a_user_error_naming_the_layer_the_pin_and_its_bytes():
    o = parse_overrides({"layers": {"c": {"slicing": {"type": "L1_FULL"}}}})
    with pytest.raises(UserError) as e:
        _plan_one((1, 3, 512, 1024), 64, stride=2, overrides=o)
    assert str(e.value).startswith(
        "conv 'c' (c) cannot fit L1 on blackhole-20 with its override (slice_type L1_FULL, "
        "num_slices 0): the least it needs is "
    )
    assert f"B > budget {BH20.l1_budget()} B (L1_FULL " in str(e.value) and "relax or remove the override" in str(
        e.value
    )


def test_a_conv_too_wide_for_any_config_runs_over_input_channel_groups():
    # 8192x8192x3x3 weights: no sharding or slicing holds them; an eighth of the input channels fits
    assert _plan_one((1, 8192, 2, 2), 8192).channel_slices == 8


def test_a_conv_that_fits_nowhere_without_an_override_does_not_blame_one():
    with pytest.raises(UserError) as e:
        # as wide as above, but 8200 input channels split into no whole tiles: no channel groups either
        _plan_one((1, 8200, 2, 2), 8192)
    message = str(e.value)
    assert message.startswith(
        "conv 'c' (c) cannot fit L1 on blackhole-20 in any sharding or DRAM slicing: the least it needs is "
    )
    assert "override" not in message and "use a smaller input size, a target with more L1" in message


def _every_fitting_config_cost(node, input_shape, target):
    """Brute force, independent of the pass's pruning: every slicing (all slice counts), sharding,
    act_block_h and buffering that fits, costed with the input in DRAM (it is the graph input)."""
    s = ConvShape.of(node, input_shape)
    dram = Placement("DRAM", "INTERLEAVED")
    slicings = [("L1_FULL", 0)] + [
        (k, 2**i)
        for k, extent in (("DRAM_SLICE_WIDTH", s.output_hw[1]), ("DRAM_SLICE_HEIGHT", s.output_hw[0]))
        for i in range(1, extent.bit_length())
        if 2**i <= extent
    ]
    costs = []
    for slice_type, k in slicings:
        for layout in LAYOUTS:
            grid, cores = conv_cores(layout, s, target)
            for abh in [0] + [32 * 2**i for i in range(8)]:
                for dbl in (True, False):
                    total = working_set(s, node, target, layout, grid, cores, slice_type, k, abh, dbl)
                    if total > target.l1_budget():
                        continue
                    conv = ConvConfig(layout, slice_type, k, abh, 1, dbl, dbl, "", grid, cores, total)
                    planned = dataclasses.replace(node, plan=dataclasses.replace(node.plan, conv=conv))
                    want = conv_input_placement(planned, s)
                    plan = dataclasses.replace(
                        planned.plan,
                        output=conv_output_placement(planned, s),
                        reshard_inputs=(("input", want),) if want != dram else (),
                    )
                    costs.append(
                        cost_model.op_cost(
                            node, plan, target, [cost_model.Operand(input_shape, "bfloat16", dram)]
                        ).total_us
                    )
    return costs


@pytest.mark.parametrize(
    "shape,out_channels,stride,dilation",
    [
        ((1, 3, 512, 1024), 64, 2, 1),  # the stem: DRAM slicing needed
        ((1, 1024, 32, 64), 256, 1, 12),  # an ASPP branch: first-fit once took WIDTH sharding here
    ],
)
def test_chosen_config_is_the_cheapest_of_every_legal_one(shape, out_channels, stride, dilation):
    b = GraphBuilder(shape)
    b.conv("c", "input", out_channels, k=3, stride=stride, dilation=dilation)
    g = conv_sharding(dtype_policy(b.graph({"out": "c"})), BH20)
    node = g.node("c")
    c = node.plan.conv
    costs = _every_fitting_config_cost(node, shape, BH20)
    chosen = cost_model.op_cost(
        node,
        dataclasses.replace(
            node.plan,
            output=conv_output_placement(node, ConvShape.of(node, shape)),
            reshard_inputs=(("input", conv_input_placement(node, ConvShape.of(node, shape))),)
            if c.slice_type == "L1_FULL"
            else (),
        ),
        BH20,
        [cost_model.Operand(shape, "bfloat16", Placement("DRAM", "INTERLEAVED"))],
    ).total_us
    assert len(costs) > 1 and chosen == pytest.approx(min(costs))
    assert c.l1_bytes_per_core <= BH20.l1_budget()
    assert "runner-up" in c.why and f"{chosen:.1f} us" in c.why


def test_bf8_output_conv_reading_the_bf16_image_is_sized_by_its_input_and_fits():
    # Regression: input bytes were sized in the conv's output dtype (bfloat8_b), under-counting the
    # bfloat16 image it reads by ~2x, so the chosen config clashed with L1 buffers at address level.
    from hardware.targets import get_target
    from passes.overrides import parse_overrides
    from passes.pipeline import plan_graph
    from tests.pass_graphs import GraphBuilder

    b = GraphBuilder((1, 3, 512, 1024))
    stem = b.conv("stem", "input", 64, stride=2, activation="relu")
    graph = b.graph({"out": b.conv("next", stem, 64)})
    target = get_target("blackhole-20")
    pins = parse_overrides({"layers": {"stem": {"dtype": "bfloat8_b", "weights_dtype": "bfloat8_b"}}})
    planned = plan_graph(graph, target, overrides=pins)
    assert planned.node("stem").plan.dtype == "bfloat8_b"
    assert all(n.plan.l1_peak_per_core <= target.l1_budget() for n in planned.nodes if n.plan)


def test_override_real_ttnn_would_reject_is_a_one_line_user_error():
    """16 width slices of a 64-wide TILE output: ttnn 0.81.1 allows at most ceil(64 / 32) = 2
    (op_slicing.cpp), so the pin is refused at plan time, naming the layer and ttnn's limit."""
    o = parse_overrides({"layers": {"c": {"slicing": {"type": "DRAM_SLICE_WIDTH", "num_slices": 16}}}})
    with pytest.raises(UserError, match=r"override of conv 'c': real ttnn rejects it: 16 slices exceed the 2") as e:
        _plan_one((1, 64, 64, 64), 64, overrides=o)
    assert "\n" not in str(e.value)
