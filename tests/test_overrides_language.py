"""The overrides language's extensions for Tenstorrent's hand-written plans (passes/overrides.py): block
prefixes and patterns, channel slicing, ttnn's AUTO slicing, DRAM copies, upsample op choices; and how
the passes and the cost model take them."""

import dataclasses
import re

import pytest

from converter.errors import UserError
from hardware.targets import get_target
from passes import cost_model as cm
from passes.overrides import parse_overrides
from passes.pipeline import plan_graph
from passes.plan import DRAM_INTERLEAVED, ConvConfig, OpPlan
from passes.resample import resample
from templates.render import render_module
from tests.pass_graphs import GraphBuilder

BH20 = get_target("blackhole-20")
DRAM = DRAM_INTERLEAVED


def _net():
    b = GraphBuilder((1, 3, 64, 128))
    s = b.conv("backbone.stem.conv1", "input", 32, stride=2)
    r = b.conv("backbone.res2.0.conv1", s, 64, k=1, padding=0)
    r = b.conv("backbone.res2.0.conv2", r, 64)
    h = b.conv("sem_seg_head.decoder.res3.fuse_conv.0", r, 64)
    up = b.upsample("sem_seg_head.upsample", h, 2)
    p = b.conv("sem_seg_head.predictor", up, 32, k=1, padding=0)
    return b.graph({"sem_seg": b.upsample("sem_seg_head.upsample_2", p, 2)})


def test_block_prefix_pins_every_node_under_it_and_only_there():
    o = parse_overrides({"layers": {"backbone.res2": {"math_fidelity": "HiFi4"}}})
    g = _net()
    assert o.for_node(g.node("backbone.res2.0.conv2")).math_fidelity == "HiFi4"
    assert o.for_node(g.node("backbone.stem.conv1")) is None
    assert o.for_node(g.node("sem_seg_head.predictor")) is None


def test_more_specific_key_wins_per_field_and_fields_merge():
    o = parse_overrides(
        {
            "layers": {
                "*.conv2": {"math_fidelity": "LoFi", "memory": "DRAM"},
                "backbone.res2": {"math_fidelity": "HiFi2", "dtype": "bfloat8_b"},
                "backbone.res2.0.conv2": {"math_fidelity": "HiFi4"},
            }
        }
    )
    pin = o.for_node(_net().node("backbone.res2.0.conv2"))
    assert (pin.math_fidelity, pin.memory, pin.dtype) == ("HiFi4", "DRAM", "bfloat8_b")


def test_patterns_and_prefixes_drop_conv_fields_on_other_ops():
    o = parse_overrides({"layers": {"sem_seg_head": {"sharding": "HEIGHT_SHARDED", "memory": "DRAM"}}})
    pin = o.for_node(_net().node("sem_seg_head.upsample"))
    assert pin.sharding is None and pin.memory == "DRAM"
    o.check_against(_net())  # a prefix over convs and other ops is fine


def test_a_pattern_or_prefix_naming_nothing_is_a_user_error():
    for key in ("backbone.res9", "*.fuse_conv.7"):
        with pytest.raises(UserError, match="unknown layer"):
            parse_overrides({"layers": {key: {"memory": "DRAM"}}}).check_against(_net())


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"channel_slices": 1}, "channel_slices 1 must be an integer >= 2"),
        ({"dram_copies": 0}, "dram_copies 0"),
        ({"slicing": {"type": "AUTO"}}, "AUTO slicing needs num_slices"),
        ({"upsample": "cubic"}, "upsample 'cubic'"),
    ],
)
def test_extension_values_are_checked(spec, match):
    with pytest.raises(UserError, match=match):
        parse_overrides({"layers": {"backbone.res2.0.conv2": spec}})


def test_upsample_choice_on_a_conv_is_a_user_error():
    with pytest.raises(UserError, match="only applies to upsample"):
        parse_overrides({"layers": {"backbone.res2.0.conv2": {"upsample": "nearest"}}}).check_against(_net())


def test_upsample_op_choices():
    o = parse_overrides(
        {
            "layers": {
                "sem_seg_head.upsample": {"upsample": "nearest"},
                "sem_seg_head.upsample_2": {"upsample": "matmuls"},
            }
        }
    )
    g = resample(_net(), BH20, o)
    assert g.node("sem_seg_head.upsample").attrs["mode"] == "nearest"
    assert g.node("sem_seg_head.upsample_2").op == "resample"
    untouched = resample(_net(), BH20)
    assert untouched.node("sem_seg_head.upsample").attrs["mode"] == "bilinear"


def test_channel_slices_and_auto_slicing_reach_the_conv_config_and_only_auto_is_not_rendered():
    o = parse_overrides(
        {
            "layers": {
                "sem_seg_head.decoder.res3.fuse_conv.0": {"channel_slices": 2},
                "backbone.res2.0.conv1": {"slicing": {"type": "AUTO", "num_slices": 0}},
            }
        }
    )
    g = plan_graph(_net(), BH20, o)
    fuse = g.node("sem_seg_head.decoder.res3.fuse_conv.0").plan.conv
    auto = g.node("backbone.res2.0.conv1").plan.conv
    assert (fuse.channel_slices, fuse.auto_slicing) == (2, False)
    assert (auto.channel_slices, auto.auto_slicing, auto.slice_type) == (1, True, "L1_FULL")
    with pytest.raises(UserError, match="matmuls_multicast are costed plans only and are not rendered"):
        render_module(g, BH20)
    pins = {"layers": {"sem_seg_head.decoder.res3.fuse_conv.0": {"channel_slices": 2}}}
    sliced = plan_graph(_net(), BH20, parse_overrides(pins))
    assert re.search(r'self\.conv2d_by_channels\(f?"[^"]*fuse_conv\.0"', render_module(sliced, BH20))


def test_channel_slices_that_split_the_channels_unevenly_are_a_user_error_naming_the_counts_that_do():
    # fuse_conv.0 reads 64 channels: 3 parts do not split it
    pins = {"layers": {"sem_seg_head.decoder.res3.fuse_conv.0": {"channel_slices": 3}}}
    message = r"channel_slices 3 does not split its 64 input channels into equal parts; use 2, 4, 8, 16, 32, 64$"
    with pytest.raises(UserError, match=message):
        plan_graph(_net(), BH20, parse_overrides(pins))


# --- the cost model's reading of them ----------------------------------------------------------


def _conv(cin, cout, k, hw=(64, 64)):
    b = GraphBuilder((1, cin) + hw)
    b.conv("c", "input", cout, k=k, padding=k // 2)
    return b.nodes[-1]


def _plan(channel_slices=1, auto=False):
    conv = ConvConfig("HEIGHT_SHARDED", "L1_FULL", 0, 0, 1, True, False, "test", (5, 4), 20)
    conv = dataclasses.replace(conv, channel_slices=channel_slices, auto_slicing=auto)
    return OpPlan("bfloat8_b", "bfloat8_b", "LoFi", True, conv=conv, output=DRAM)


def test_channel_sliced_conv_is_n_partial_convs_plus_slices_and_adds():
    node = _conv(256, 128, 3)
    src = [cm.Operand((1, 256, 64, 64), "bfloat8_b", DRAM)]
    whole = cm.op_cost(node, _plan(), BH20, src)
    part = cm.op_cost(node, _plan(), BH20, [cm.Operand((1, 64, 64, 64), "bfloat8_b", DRAM)])
    four = cm.op_cost(node, _plan(channel_slices=4), BH20, src)
    # 4 convs over 64 channels, 4 input slices, 3 accumulating adds and a bias add
    assert four.device_ops == 4 * part.device_ops + 4 + 3 + 1
    assert four.flops == 4 * part.flops == whole.flops
    assert four.total_us > 4 * part.total_us > whole.total_us


def test_auto_sliced_pointwise_conv_on_dram_is_one_matmul_at_its_own_rate(monkeypatch):
    node = _conv(512, 64, 1)
    src = [cm.Operand((1, 512, 64, 64), "bfloat8_b", DRAM)]
    auto = cm.op_cost(node, _plan(auto=True), BH20, src)
    assert auto.device_ops == 1  # real ttnn 0.81.1: a single MatmulDeviceOperation
    monkeypatch.setattr(cm, "DRAM_MATMUL_EFFICIENCY", cm.DRAM_MATMUL_EFFICIENCY / 2)
    assert cm.op_cost(node, _plan(auto=True), BH20, src).compute_us == pytest.approx(2 * auto.compute_us)
    three = _conv(512, 64, 3)  # not pointwise: ttnn's conv program, costed as such
    assert cm.op_cost(three, _plan(auto=True), BH20, src).device_ops > 1


def test_dram_copies_add_one_move_each():
    node = _conv(64, 64, 3)
    src = [cm.Operand((1, 64, 64, 64), "bfloat8_b", DRAM)]
    one = cm.op_cost(node, _plan(), BH20, src)
    two = cm.op_cost(node, dataclasses.replace(_plan(), dram_copies=2), BH20, src)
    move = cm.reshard_cost((1, 64, 64, 64), "bfloat8_b", DRAM, DRAM, BH20)
    assert two.device_ops == one.device_ops + 2
    assert two.total_us == pytest.approx(one.total_us + 2 * move.total_us)
