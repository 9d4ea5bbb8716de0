"""dtype_policy rules and override parsing/validation."""

import pytest

from converter.errors import UserError
from passes.dtype_policy import DtypeRules, dtype_policy
from passes.overrides import load_overrides, parse_overrides
from tests.pass_graphs import GraphBuilder


def _net():
    b = GraphBuilder((1, 3, 64, 128))
    s = b.conv("stem", "input", 32, stride=2)
    x = b.conv("body", s, 64, stride=8)  # runs at 1/2 resolution
    big = b.conv("wide", x, 64, k=3)  # runs at 1/16; inner dim 64*9 = 576
    p = b.conv("predictor", big, 19, k=1, padding=0)
    return b.graph({"sem_seg": b.upsample("up", p, 4)})


def test_weights_bf8_at_sixteenth_resolution_except_first_conv_and_predictor():
    g = dtype_policy(_net())
    w = {n.name: n.plan.weights_dtype for n in g.nodes if n.op == "conv2d"}
    assert w == {"stem": "bfloat16", "body": "bfloat16", "wide": "bfloat8_b", "predictor": "bfloat16"}
    assert g.node("body").plan.math_fidelity == "HiFi2" and g.node("stem").plan.math_fidelity == "HiFi4"
    assert all(n.plan.dtype == "bfloat16" for n in g.nodes)
    assert g.node("up").plan.weights_dtype is None and g.node("up").plan.fp32_dest_acc is False


def test_rules_are_configurable_and_fp32_acc_follows_inner_dim():
    g = dtype_policy(_net(), DtypeRules(bf16_first_conv=False, bf16_predictors=False, bf8_min_stride=1,
                                         fp32_acc_min_inner_dim=576))
    assert g.node("stem").plan.weights_dtype == "bfloat8_b"
    assert g.node("wide").plan.fp32_dest_acc is True
    assert g.node("body").plan.fp32_dest_acc is False  # 32*9 = 288 < 576


def test_override_by_source_pins_dtype():
    o = parse_overrides({"layers": {"body": {"weights_dtype": "bfloat16", "math_fidelity": "HiFi4"}}})
    g = dtype_policy(_net(), overrides=o)
    assert (g.node("body").plan.weights_dtype, g.node("body").plan.math_fidelity) == ("bfloat16", "HiFi4")


@pytest.mark.parametrize("layers, match", [
    ({"nope": {"memory": "L1"}}, "unknown layer 'nope'"),
    ({"up": {"sharding": "HEIGHT_SHARDED"}}, "only apply to conv2d"),
])
def test_override_check_against_graph(layers, match):
    with pytest.raises(UserError, match=match):
        parse_overrides({"layers": layers}).check_against(_net())


@pytest.mark.parametrize("spec, match", [
    ({"sharding": "DIAGONAL"}, "sharding 'DIAGONAL'"),
    ({"act_block_h": 33}, "multiple of 32"),
    ({"slicing": {"type": "DRAM_SLICE_WIDTH", "num_slices": 0}}, "num_slices"),
    ({"colour": "red"}, "unknown field"),
])
def test_impossible_values_are_user_errors(spec, match):
    with pytest.raises(UserError, match=match):
        parse_overrides({"layers": {"body": spec}})


def test_load_overrides_yaml_and_bad_file(tmp_path):
    p = tmp_path / "o.yaml"
    p.write_text("layers:\n  body:\n    memory: DRAM\n")
    assert load_overrides(p).layers["body"].memory == "DRAM"
    p.write_text("layers: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_overrides(p)
    with pytest.raises(UserError, match="cannot read"):
        load_overrides(tmp_path / "missing.json")


def test_performance_profile_is_lofi_everywhere_with_the_default_dtypes():
    default, fast = dtype_policy(_net()), dtype_policy(_net(), DtypeRules.performance())
    assert {n.plan.math_fidelity for n in fast.nodes} == {"LoFi"}
    for a, b in zip(default.nodes, fast.nodes):
        assert (a.plan.dtype, a.plan.weights_dtype, a.plan.fp32_dest_acc) == (b.plan.dtype, b.plan.weights_dtype,
                                                                              b.plan.fp32_dest_acc)
    assert DtypeRules() != DtypeRules.performance()  # the default keeps HiFi2/HiFi4
