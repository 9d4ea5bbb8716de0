"""memory_plan: placements, moves and deallocations replayed by an independent simulator.

The simulator executes a planned graph the way the code generator must (moves, op, deallocations)
and checks: nothing is read after its deallocation, every op gets its inputs where ttnn needs them,
the live L1 never exceeds the op's recorded peak nor the budget, and the heads end in DRAM.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.targets import Target, get_target
from passes.conv_sharding import conv_input_placement
from passes.cost_model import evaluate
from passes.l1_sim import TensorState, buffer_bytes
from passes.overrides import parse_overrides
from passes.pipeline import plan_graph
from passes.shards import ConvShape, physical, rows_cols
from tests.pass_graphs import GraphBuilder

# 4 cores with a 250 kB budget: small graphs already need spills and DRAM slicing.
TINY = Target("tiny", "wormhole_b0", (2, 2), 400_000, 250_000 + 32768 + 65536, 2**30, 1, 100.0, 1.0, 16, 32)


def simulate(g, target):
    budget = target.l1_budget()
    nodes = {n.name: n for n in g.nodes}
    loc, freed, peaks = {}, set(), []

    def l1(x):
        rows, cols = rows_cols(nodes[x].out)
        return buffer_bytes(TensorState(loc[x], rows, cols, nodes[x].plan.dtype, nodes[x].plan.layout), target)

    for n in g.nodes:
        p = n.plan
        for x, place in p.spill_before + p.reshard_inputs:
            assert x in loc and x not in freed, f"{n.name} moves dead tensor {x}"
            loc[x] = place
        for x in n.inputs:
            assert x in loc and x not in freed, f"{n.name} reads {x} after deallocation"
        if n.op == "conv2d":
            x = nodes[n.inputs[0]]
            want = conv_input_placement(n, ConvShape.of(n, x.out.shape))
            assert loc[x.name] == physical(want, x.out.shape[1], x.plan.layout)
        if n.op == "upsample" and n.attrs["mode"] == "bilinear":
            if p.slices is None:  # ttnn reads height shards; the ROW_BANDS form shards its DRAM input band by band
                assert (loc[n.inputs[0]].buffer, loc[n.inputs[0]].layout) == ("L1", "HEIGHT_SHARDED")
            else:
                assert p.slices[0] == "ROW_BANDS" and loc[n.inputs[0]].buffer == p.output.buffer == "DRAM"
        if n.op == "add":  # alike once read as TILE (a ROW_MAJOR operand is converted first)
            a, b = (physical(loc[x], nodes[x].out.shape[1], "TILE") for x in n.inputs)
            assert a == b
        loc[n.name] = loc[n.inputs[0]] if n.op == "output" else p.output
        live = sum(l1(x) for x in loc)
        assert live <= p.l1_peak_per_core or n.op in ("input", "output")
        assert p.l1_peak_per_core <= budget
        peaks.append(live)
        for x in p.deallocate_after:
            del loc[x]
            freed.add(x)
    for head in g.outputs.values():
        assert loc[head].buffer == "DRAM"
    return peaks


@st.composite
def random_graphs(draw):
    c0 = draw(st.sampled_from([3, 8, 16]))
    b = GraphBuilder((1, c0, 32, 64), seed=draw(st.integers(0, 99)))
    tensors = ["input"]
    for i in range(draw(st.integers(2, 9))):
        x = draw(st.sampled_from(tensors))
        n, c, h, w = b._shape(x)
        kind = draw(st.sampled_from(["conv", "conv", "add", "up", "cat", "pool"]))
        same = [t for t in tensors if b._shape(t) == (n, c, h, w) and t != x]
        same_hw = [t for t in tensors if b._shape(t)[2:] == (h, w) and t != x and t != "input"]
        if kind == "add" and same:
            y = b.add(f"add{i}", x, draw(st.sampled_from(same)))
        elif (
            kind == "up" and h <= 32 and c <= 32 and x != "input"
        ):  # ttnn cannot slice upsample; TINY fits it up to 32 ch
            y = b.upsample(f"up{i}", x, 2)
        elif kind == "cat" and same_hw and x != "input":
            y = b.concat(f"cat{i}", [x, draw(st.sampled_from(same_hw))])
        elif kind == "pool" and h >= 16 and x != "input":
            y = b.maxpool(f"pool{i}", x)
        else:
            k = draw(st.sampled_from([1, 3]))
            stride = draw(st.sampled_from([1, 1, 2])) if h >= 16 else 1
            y = b.conv(f"conv{i}", x, draw(st.sampled_from([16, 32, 64, 128])), k=k, stride=stride)
            if draw(st.booleans()):
                y = b.relu(f"relu{i}", b.bn(f"bn{i}", y))
        tensors.append(y)
    heads = {}
    for j, t in enumerate(draw(st.lists(st.sampled_from(tensors[1:]), min_size=1, max_size=2, unique=True))):
        heads[f"h{j}"] = b._add(f"output.h{j}", "output", [t], b._shape(t))
    return b.graph(heads)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=random_graphs())
def test_planned_random_graphs_never_exceed_l1(g):
    simulate(plan_graph(g, TINY), TINY)


def _chain():
    b = GraphBuilder((1, 32, 64, 64))
    a = b.conv("a", "input", 32)
    skip = b.conv("skip", a, 32)  # long-lived: read again at the very end
    x = b.conv("down", skip, 64, k=3, stride=2)
    for i in range(3):
        x = b.conv(f"c{i}", x, 64, k=3)
    y = b.concat("join", [b.upsample("up", x, 2), skip])
    return b.graph({"out": b._add("output.out", "output", [y], b._shape(y))})


def test_belady_spills_the_farthest_used_tensor_and_the_join_reads_it_from_dram():
    g = plan_graph(_chain(), TINY)
    spills = [(n.name, x) for n in g.nodes for x, _ in n.plan.spill_before]
    assert spills[:1] == [("c0", "skip")]  # read again only at the very end: the farthest next use
    join = g.node("join").plan
    assert "skip" not in [x for x, _ in join.reshard_inputs] and join.output.buffer == "DRAM"
    simulate(g, TINY)


def test_big_target_keeps_everything_in_l1_and_frees_each_tensor_once():
    t = get_target("blackhole-p150")
    g = plan_graph(_chain(), t)
    assert all(not n.plan.spill_before for n in g.nodes)
    assert g.node("c2").plan.output.buffer == "L1"
    freed = [x for n in g.nodes for x in n.plan.deallocate_after]
    assert sorted(freed) == sorted(set(freed)) and "join" not in freed
    assert g.node("join").plan.output.buffer == "DRAM"  # a head
    simulate(g, t)


def _feeds_a_sliced_conv():
    b = GraphBuilder((1, 16, 48, 64))
    a = b.conv("c1", "input", 32, k=1)  # fits L1 on TINY
    y = b.conv("c2", a, 64, k=3)  # needs DRAM slicing on TINY: reads its input from DRAM
    return b.graph({"out": b._add("output.out", "output", [y], b._shape(y))})


def test_output_goes_straight_to_dram_when_its_reader_is_dram_sliced():
    g = plan_graph(_feeds_a_sliced_conv(), TINY)
    assert g.node("c2").plan.conv.slice_type != "L1_FULL"
    assert g.node("c1").plan.output.buffer == "DRAM"  # the L1 mode would cost a move before c2
    assert g.node("c2").plan.reshard_inputs == ()
    kept_in_l1 = plan_graph(_feeds_a_sliced_conv(), TINY, parse_overrides({"layers": {"c1": {"memory": "L1"}}}))
    assert kept_in_l1.node("c2").plan.reshard_inputs  # the move the cheaper plan avoids
    assert evaluate(g, TINY).total_ms < evaluate(kept_in_l1, TINY).total_ms
    simulate(g, TINY)
