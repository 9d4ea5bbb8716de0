"""merge_siblings: exact rewrite of sibling convs into one, common subexpressions, cost-decided merges."""

import torch

from hardware.targets import get_target
from passes.dtype_policy import dtype_policy
from passes.merge_siblings import eliminate_common, merge_group, merge_siblings, merged_name
from passes.overrides import parse_overrides
from tests.pass_graphs import GraphBuilder, evaluate

BH20 = get_target("blackhole-20")


def _two_aspps(shape=(1, 32, 8, 8), ch=16, dilation=2):
    """Two heads, each an ASPP-like block on one shared tensor: 1x1, dilated 3x3, image pooling, concat,
    1x1 projection."""
    b = GraphBuilder(shape)
    x = b.conv("backbone", "input", shape[1], k=1, padding=0, activation="relu")
    heads = {}
    for h in ("sem", "ins"):
        a = b.conv(f"{h}.convs.0", x, ch, k=1, padding=0, activation="relu")
        d = b.conv(f"{h}.convs.1", x, ch, dilation=dilation, activation="relu")
        pooled = b.conv(f"{h}.convs.2.1", b.gap(f"{h}.convs.2.0", x), ch, k=1, padding=0, activation="relu")
        up = b.upsample(f"{h}.up", pooled, shape[2])
        heads[h] = b.conv(f"{h}.project", b.concat(f"{h}.concat", [a, d, up]), ch, k=1, padding=0)
    return b.graph({"sem_seg": heads["sem"], "center": heads["ins"]})


def _siblings(graph, suffix):
    return [n for n in graph.nodes if n.name.endswith(suffix) and n.op == "conv2d"]


def test_common_subexpressions_collapse_under_a_merged_name():
    g = eliminate_common(_two_aspps())
    pools = [n for n in g.nodes if n.op == "global_avg_pool2d"]
    assert [p.name for p in pools] == ["merged.convs.2.0"] and pools[0].source == "sem.convs.2.0 + ins.convs.2.0"
    assert {n.inputs[0] for n in g.nodes if n.name.endswith("convs.2.1")} == {"merged.convs.2.0"}


def test_merging_every_branch_is_exact_and_shares_the_concat():
    g0 = eliminate_common(dtype_policy(_two_aspps()))
    g = g0
    for suffix in ("convs.0", "convs.1", "convs.2.1"):
        g, _, _ = merge_group(g, _siblings(g, suffix))
        g = eliminate_common(g)
    x = torch.randn(1, 32, 8, 8, generator=torch.Generator().manual_seed(0))
    want, got = evaluate(g0, x), evaluate(g, x)
    for head in want:
        torch.testing.assert_close(got[head], want[head], rtol=1e-5, atol=1e-5)
    convs = [n.name for n in g.nodes if n.op == "conv2d"]
    assert convs == ["backbone", "merged.convs.0", "merged.convs.1", "merged.convs.2.1", "sem.project", "ins.project"]
    concats = [n for n in g.nodes if n.op == "concat"]
    assert len(concats) == 1 and concats[0].out.shape[1] == 6 * 16
    assert g.node("sem.project").attrs["in_channels"] == 96 and g.node("sem.project").params["weight"].shape[1] == 96


def test_merged_conv_runs_at_the_strictest_precision_of_its_members():
    pins = parse_overrides({"layers": {"sem.convs.1": {"math_fidelity": "LoFi", "dtype": "bfloat8_b"}}})
    g = dtype_policy(_two_aspps(), overrides=pins)
    g, _, _ = merge_group(g, _siblings(g, "convs.1"))
    m = g.node("merged.convs.1")
    assert (m.plan.math_fidelity, m.plan.dtype) == ("HiFi2", "bfloat16")


def test_a_member_read_by_an_add_is_not_merged():
    b = GraphBuilder((1, 16, 8, 16))
    one = b.conv("one", "input", 16)
    two = b.conv("two", "input", 16)
    g = dtype_policy(b.graph({"sem_seg": b.add("sum", one, b.conv("after", two, 16))}))
    assert merge_group(g, [g.node("one"), g.node("two")]) is None


def test_a_tapped_member_is_not_merged():
    # --verify compares a tap (a Detectron2 module's output) by its node's name and width; merging
    # renamed it away (found planning the 128x256 Panoptic-DeepLab for blackhole-p150: both ASPP
    # projections merged, rendering failed on the stale tap).
    plain = _dilated_pair()
    merged, _, _ = merge_group(plain, [plain.node("sem.convs.0"), plain.node("ins.convs.0")])
    assert merged.node("merged.convs.0")  # without taps these siblings merge
    tapped = _dilated_pair()
    tapped = tapped.replace_nodes(tapped.nodes, meta={**tapped.meta, "taps": {"sem_seg_head.aspp": "sem.convs.0"}})
    assert merge_group(tapped, [tapped.node("sem.convs.0"), tapped.node("ins.convs.0")]) is None


def _dilated_pair(pin=None):
    """Two heads' d=18 ASPP branches at Panoptic-DeepLab's size: 2048 -> 256 channels at 32x64."""
    b = GraphBuilder((1, 2048, 32, 64))
    outs = {}
    for h, head in (("sem", "sem_seg"), ("ins", "center")):
        d = b.conv(f"{h}.convs.3", "input", 256, dilation=18, activation="relu")
        outs[head] = b.conv(
            f"{h}.project",
            b.concat(f"{h}.concat", [d, b.conv(f"{h}.convs.0", "input", 256, k=1, padding=0)]),
            256,
            k=1,
            padding=0,
        )
    return dtype_policy(b.graph(outs), overrides=pin)


def test_the_cost_model_decides_and_pinned_layers_stay_apart():
    merged = merge_siblings(_dilated_pair(), BH20)
    assert "merged.convs.3" in [n.name for n in merged.nodes]
    assert "merged.convs.3" in merged.meta["pass_notes"]["merge_siblings"]
    pin = parse_overrides({"layers": {"sem.convs.3": {"memory": "DRAM"}}})
    kept = merge_siblings(_dilated_pair(pin), BH20, overrides=pin)
    assert {"sem.convs.3", "ins.convs.3"} <= {n.name for n in kept.nodes}


def test_merged_names_say_what_they_merge_and_never_collide():
    assert merged_name(["sem.decoder.convs.3", "ins.decoder.convs.3"]) == "merged.decoder.convs.3"
    assert merged_name(["backbone.res3.0.conv1", "sem.project"]) == "merged.backbone.res3.0.conv1+sem.project"
    assert merged_name(["a.c", "b.c"], taken={"merged.c", "merged.c.2"}) == "merged.c.3"
