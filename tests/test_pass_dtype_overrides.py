"""dtype_policy rules and override parsing/validation."""

import pytest

from converter.errors import UserError
from hardware.targets import get_target
from passes.dtype_policy import (
    PRECISIONS,
    SRCB_TRUNCATION,
    DtypeRules,
    dtype_policy,
    one_dtype_per_concat,
    unbias_truncation,
)
from passes.overrides import load_overrides, parse_overrides
from passes.pipeline import Context, run_passes
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


def test_lofi_modules_run_lofi_in_bf8_except_their_predictor():
    b = GraphBuilder((1, 3, 64, 128))
    s = b.conv("stem", "input", 32, stride=2)
    body = b.conv("backbone.body", s, 32)
    head = b.conv("sem_seg_head.head", body, 32)
    pred = b.conv("sem_seg_head.predictor", head, 19, k=1, padding=0)
    center = b.conv("ins_embed_head.center", body, 1, k=1, padding=0)
    g = dtype_policy(b.graph({"sem_seg": pred, "center": center}))
    plan = {n.name: (n.plan.math_fidelity, n.plan.weights_dtype) for n in g.nodes if n.op == "conv2d"}
    assert g.node("sem_seg_head.head").plan.dtype == "bfloat8_b" and g.node("backbone.body").plan.dtype == "bfloat16"
    assert plan == {
        "stem": ("HiFi4", "bfloat16"),
        "backbone.body": ("HiFi2", "bfloat16"),
        "sem_seg_head.head": ("LoFi", "bfloat8_b"),
        "sem_seg_head.predictor": ("HiFi4", "bfloat16"),
        "ins_embed_head.center": ("HiFi4", "bfloat16"),
    }
    off = dtype_policy(b.graph({"sem_seg": pred, "center": center}), DtypeRules(lofi_modules=()))
    assert off.node("sem_seg_head.head").plan.math_fidelity == "HiFi2"


def test_concat_inputs_share_one_dtype():
    b = GraphBuilder((1, 3, 64, 128))
    s = b.conv("stem", "input", 32, stride=4)
    low = b.conv("low", s, 32, stride=2)
    up = b.upsample("up", low, 2)
    skip = b.relu("skip_relu", b.conv("skip", s, 16))
    other = b.conv("other", s, 16)
    cat = b.concat("cat", [up, skip])
    cat2 = b.concat("cat2", [b.conv("a", other, 16), b.conv("b2", other, 16)])
    pins = parse_overrides({"layers": {k: {"dtype": "bfloat8_b"} for k in ("low", "skip", "a", "b2")}})
    g = one_dtype_per_concat(dtype_policy(b.graph({"sem_seg": b.conv("head", cat, 4), "center": cat2}), overrides=pins))
    # the upsample of a bfloat8_b tensor is bfloat16 (ROW_MAJOR), so the conv behind the relu widens
    assert g.node("skip").plan.dtype == "bfloat16" and any("concatenates it" in n for n in g.node("skip").plan.notes)
    assert g.node("low").plan.dtype == "bfloat8_b"
    assert (g.node("a").plan.dtype, g.node("b2").plan.dtype) == ("bfloat8_b", "bfloat8_b")  # already one dtype


def test_rules_are_configurable_and_fp32_acc_follows_inner_dim():
    g = dtype_policy(
        _net(), DtypeRules(bf16_first_conv=False, bf16_predictors=False, bf8_min_stride=1, fp32_acc_min_inner_dim=576)
    )
    assert g.node("stem").plan.weights_dtype == "bfloat8_b"
    assert g.node("wide").plan.fp32_dest_acc is True
    assert g.node("body").plan.fp32_dest_acc is False  # 32*9 = 288 < 576


def test_override_by_source_pins_dtype():
    o = parse_overrides({"layers": {"body": {"weights_dtype": "bfloat16", "math_fidelity": "HiFi4"}}})
    g = dtype_policy(_net(), overrides=o)
    assert (g.node("body").plan.weights_dtype, g.node("body").plan.math_fidelity) == ("bfloat16", "HiFi4")


@pytest.mark.parametrize(
    "layers, match",
    [
        ({"nope": {"memory": "L1"}}, "unknown layer 'nope'"),
        ({"up": {"sharding": "HEIGHT_SHARDED"}}, "only apply to conv2d"),
    ],
)
def test_override_check_against_graph(layers, match):
    with pytest.raises(UserError, match=match):
        parse_overrides({"layers": layers}).check_against(_net())


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"sharding": "DIAGONAL"}, "sharding 'DIAGONAL'"),
        ({"act_block_h": 33}, "multiple of 32"),
        ({"slicing": {"type": "DRAM_SLICE_WIDTH", "num_slices": 0}}, "num_slices"),
        ({"colour": "red"}, "unknown field"),
    ],
)
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
    with pytest.raises(UserError, match="missing.json not found"):
        load_overrides(tmp_path / "missing.json")


def test_fast_precision_is_lofi_and_bf8_everywhere_but_the_image():
    g = dtype_policy(_net(), PRECISIONS["fast"])
    convs = [n.plan for n in g.nodes if n.op == "conv2d"]
    assert {(p.math_fidelity, p.weights_dtype, p.dtype, p.fp32_dest_acc) for p in convs} == {
        ("LoFi", "bfloat8_b", "bfloat8_b", True)
    }
    assert g.node("input").plan.dtype == "bfloat16"
    assert PRECISIONS["accurate"] == DtypeRules()


def test_weights_are_prepared_against_the_truncation_of_their_fidelity():
    b = GraphBuilder((1, 3, 64, 128))
    s = b.conv("stem", "input", 32, stride=2)
    body = b.conv("backbone.body", s, 32)
    head = b.conv("sem_seg_head.head", body, 32)
    head2 = b.conv("sem_seg_head.head2", head, 32)
    pred = b.conv("sem_seg_head.predictor", head2, 19, k=1, padding=0)
    graph = b.graph({"sem_seg": pred})
    g = unbias_truncation(one_dtype_per_concat(dtype_policy(graph)))  # as passes/pipeline.py runs them
    prep = {n.name: (n.plan.weights_scale, n.plan.weights_round_srca) for n in g.nodes if n.op == "conv2d"}
    scale = 1 / (1 - SRCB_TRUNCATION)
    assert prep == {
        "stem": (1.0, False),  # HiFi4 truncates nothing
        "backbone.body": (scale, False),  # HiFi2: SrcB drops the bfloat16 input's last bit
        "sem_seg_head.head": (scale, True),  # LoFi on a bfloat16 input: both operands
        "sem_seg_head.head2": (1.0, True),  # LoFi on a bfloat8_b input: SrcB holds it whole
        "sem_seg_head.predictor": (1.0, False),
    }
    fast, _ = run_passes(
        graph,
        ["dtype_policy", "one_dtype_per_concat", "unbias_truncation"],
        Context(get_target("blackhole-20"), rules=PRECISIONS["fast"]),
    )
    assert {(n.plan.weights_scale, n.plan.weights_round_srca) for n in fast.nodes if n.op == "conv2d"} == {(1.0, False)}


def test_srcb_truncation_is_the_expected_loss_the_emulated_matrix_engine_has():
    """SRCB_TRUNCATION against the emulator's SrcB (runtime/emulator/fidelity.py, from the ISA documents):
    the share of a sum of bfloat16 values with uniform mantissas that the truncation drops."""
    import torch

    from runtime.emulator.fidelity import srcb_hi

    g = torch.Generator().manual_seed(0)
    mantissa = 1 + torch.randint(0, 128, (1 << 20,), generator=g) / 128
    x = (mantissa * 2.0 ** torch.randint(-8, 8, (1 << 20,), generator=g)).to(torch.bfloat16)
    dropped = (x.float() - srcb_hi(x).float()).sum() / x.float().sum()
    assert abs(dropped.item() / SRCB_TRUNCATION - 1) < 0.01
