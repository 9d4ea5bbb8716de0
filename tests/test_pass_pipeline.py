"""Pipeline + summary on small graphs, and the real traced Panoptic-DeepLab on every target."""

import pytest

from passes.cost_model import evaluate
from passes.pipeline import PASS_ORDER, plan_graph, plan_graph_timed
from passes.summary import summarize
from passes.targets import TARGETS, get_target
from tests.pass_graphs import GraphBuilder
from tests.test_pass_memory_plan import simulate


def _small():
    b = GraphBuilder((1, 3, 64, 128))
    x = b.relu("r0", b.bn("bn0", b.conv("stem", "input", 32, stride=2)))
    y = b.relu("r1", b.add("add", b.conv("c1", x, 32), x))
    p = b.conv("pred", b.concat("cat", [b.upsample("up", b.conv("down", y, 64, stride=2), 2), y]), 19, k=1)
    return b.graph({"sem_seg": b._add("output.sem_seg", "output", [p], b._shape(p))})


def test_pipeline_runs_every_pass_and_summary_is_deterministic():
    t = get_target("blackhole-20")
    g, timings = plan_graph_timed(_small(), t)
    assert tuple(timings) == PASS_ORDER
    s = summarize(g, t)
    assert [r.op for r in s.rows].count("conv2d") == 4 and s.l1_peak_per_core <= s.budget_per_core
    assert next(r for r in s.rows if r.name == "stem").weights_dtype == "bfloat16"
    assert s == summarize(plan_graph(_small(), t), t)


@pytest.fixture(scope="module")
def pdl_graph():
    import converter.detectron2_compat as c
    c.install()
    from converter.model import build_model, load_config
    from converter.trace import trace_model
    model = build_model(load_config(input_size=(512, 1024))).eval()
    return trace_model(model, "panoptic_deeplab", (512, 1024))


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_real_model_plan_fits_every_target(pdl_graph, target):
    t = get_target(target)
    g = plan_graph(pdl_graph, t)
    s = summarize(g, t)
    assert s.l1_peak_per_core <= t.l1_budget()
    convs = [n for n in g.nodes if n.op == "conv2d"]
    # each of the model's 88 convs is planned once, alone or in a merged conv ("a + b" sources)
    assert sum(len(n.source.split(" + ")) for n in convs) == 88 and all(n.plan.conv.shard_layout for n in convs)
    assert not [n for n in g.nodes if n.op in ("batch_norm", "relu")]
    assert s.l1_share > 0.3
    simulate(g, t)


def test_pipeline_ends_with_cost_estimates_on_every_device_op():
    t = get_target("blackhole-20")
    g = plan_graph(_small(), t)
    device_ops = [n for n in g.nodes if n.op not in ("input", "output")]
    assert all(n.plan.est_time_us > 0 for n in device_ops)
    assert g.node("stem").plan.dram_bytes > 0  # reads the image from DRAM
    # the planner's choices are costed by the same model the benchmark uses
    assert sum(n.plan.est_time_us for n in device_ops) / 1e3 == pytest.approx(evaluate(g, t).total_ms, rel=1e-3)
