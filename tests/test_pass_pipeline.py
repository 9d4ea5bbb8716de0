"""Pipeline + summary on small graphs, and the real traced Panoptic-DeepLab on every target."""

import dataclasses

import pytest

from hardware.targets import TARGETS, get_target
from passes import contracts, pipeline
from passes.cost_model import evaluate
from passes.fold_batchnorm import fold_batchnorm
from passes.pipeline import PASS_ORDER, PASSES, Context, Pass, plan_graph, plan_graph_timed, run_passes
from passes.plan import Buffer, ConvConfig, MemoryLayout, OpPlan, Placement, owners
from passes.summary import summarize
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
@pytest.mark.parametrize("target", sorted(n for n, t in TARGETS.items() if t.num_chips == 1))  # a mesh plans its chip
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


def test_every_pass_contract_holds_on_the_pipeline_and_names_what_breaks_it():
    t = get_target("blackhole-20")
    g = plan_graph(_small(), t)  # run_passes checks each pass's requires and ensures on the way
    for p in PASSES:
        for cond in p.requires + p.ensures:
            assert cond.offenders(g) == [], (p.name, cond.name)
    assert [p.name for p in PASSES] == list(PASS_ORDER)
    # the facts are read off the graph, not off the pass that made them
    unfolded = _small()
    assert contracts.BATCHNORM_FOLDED.offenders(unfolded) == ["bn0"]
    assert contracts.PLANNED.offenders(unfolded)[:1] == ["input"]
    folded = fold_batchnorm(unfolded)
    assert contracts.BATCHNORM_FOLDED.offenders(folded) == [] and contracts.RELU_FUSED.offenders(folded) == ["r0", "r1"]


def test_a_pass_run_out_of_order_fails_at_once_with_the_condition():
    t = get_target("blackhole-20")
    with pytest.raises(contracts.ContractError, match="before fuse: 'every batch_norm that alone reads a conv"):
        run_passes(_small(), ["fuse"], Context(t))
    folded, _ = run_passes(_small(), ["fold_batchnorm", "fuse"], Context(t))
    with pytest.raises(contracts.ContractError, match=r"before conv_sharding: 'every node has an OpPlan.*: input, "):
        run_passes(folded, ["conv_sharding"], Context(t))
    with pytest.raises(contracts.ContractError, match="before memory_plan: 'every conv2d has a ConvConfig'"):
        run_passes(folded, ["dtype_policy", "one_dtype_per_concat", "memory_plan"], Context(t))


def test_a_pass_that_breaks_what_it_ensures_is_caught_after_it():
    t = get_target("blackhole-20")
    planned, _ = run_passes(_small(), ["fold_batchnorm", "fuse", "dtype_policy"], Context(t))
    # a bfloat8_b producer concatenated with a bfloat16 one: what one_dtype_per_concat must repair
    mixed = planned.replace_nodes(
        [
            dataclasses.replace(n, plan=dataclasses.replace(n.plan, dtype="bfloat8_b")) if n.name == "add" else n
            for n in planned
        ]
    )
    assert contracts.ONE_DTYPE_PER_CONCAT.offenders(mixed) == ["cat"]
    with pytest.raises(contracts.ContractError, match="before merge_siblings: 'every concat's inputs"):
        run_passes(mixed, ["merge_siblings"], Context(t))
    repaired, _ = run_passes(mixed, ["one_dtype_per_concat"], Context(t))
    assert contracts.ONE_DTYPE_PER_CONCAT.offenders(repaired) == []


def test_a_pass_writes_only_the_plan_fields_it_owns(monkeypatch):
    t = get_target("blackhole-20")
    assert {o for f in dataclasses.fields(OpPlan) for o in owners(f.name)} <= set(PASS_ORDER)
    planned, _ = run_passes(_small(), ["fold_batchnorm", "fuse", "dtype_policy"], Context(t))

    def sloppy(g, _):  # a layout pass that also changes a dtype (the dtype policy's decision)
        n = g.node("add")
        return g.replace_nodes(
            [dataclasses.replace(x, plan=dataclasses.replace(x.plan, dtype="bfloat8_b")) if x is n else x for x in g]
        )

    monkeypatch.setitem(pipeline._BY_NAME, "layout_plan", Pass("layout_plan", sloppy))
    with pytest.raises(contracts.ContractError, match="after layout_plan: it changed dtype of add, which it does not"):
        run_passes(planned, ["layout_plan"], Context(t))

    def rewrites_notes(g, _):
        return g.replace_nodes([dataclasses.replace(x, plan=dataclasses.replace(x.plan, notes=())) for x in g])

    monkeypatch.setitem(pipeline._BY_NAME, "layout_plan", Pass("layout_plan", rewrites_notes))
    with pytest.raises(contracts.ContractError, match="it changed notes of"):
        run_passes(planned, ["layout_plan"], Context(t))


def test_plan_records_reject_values_outside_their_choices():
    with pytest.raises(ValueError, match=r"OpPlan.math_fidelity = 'HiFi5': not one of LoFi, HiFi2, HiFi3, HiFi4"):
        OpPlan("bfloat16", None, "HiFi5", False)
    with pytest.raises(ValueError, match=r"Placement.buffer = 'SRAM'"):
        Placement("SRAM", "INTERLEAVED")
    with pytest.raises(ValueError, match="a conv names its sharding"):
        ConvConfig("INTERLEAVED", "L1_FULL", 0, 0, 1, False, False, "")
    p = Placement("L1", "HEIGHT_SHARDED", (1, 1), 1, (32, 32))
    assert p.buffer is Buffer.L1 and p.layout is MemoryLayout.HEIGHT_SHARDED and f"{p.layout}" == "HEIGHT_SHARDED"


def test_plan_report_dram_bytes_come_from_the_cost_model():
    t = get_target("blackhole-20")
    g = plan_graph(_small(), t)
    rows = {r.name: r for r in summarize(g, t).rows}
    costs = {r.name: r.cost for r in evaluate(g, t).rows}
    assert rows["stem"].dram_bytes == costs["stem"].dram_bytes > 3 * 64 * 128  # reads the image from DRAM
    assert rows["input"].dram_bytes == 0  # not a device op
