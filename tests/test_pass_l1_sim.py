"""l1_sim: the planner's address-level L1 model, against hand-computed addresses and the emulator.

The emulator (runtime/emulator) is the independent check: a planned graph rendered to code and run
there must never run out of L1 or clash with circular buffers, and the emulator's peak must be the
plan's simulated peak (the planner and the emulator model the same allocations in the same order).
"""

import torch
from hypothesis import HealthCheck, given, settings

from passes.l1_sim import Alloc, DoesNotFit, L1Sim, Program
from passes.pipeline import plan_graph
from runtime.emulator import emulated_ttnn
from runtime.run import load_module, model_class, to_device_input
from runtime.weights import host_weights, to_ttnn
from templates.render import render_module
from tests.test_pass_memory_plan import TINY, _chain, random_graphs

BASE = TINY.l1_bytes_per_core - TINY.l1_unreserved_per_core  # 51696: where circular buffers start
TOP = TINY.l1_bytes_per_core - 32768  # L1_SMALL sits above


def test_buffers_are_first_fit_from_the_top_and_reallocation_closes_a_hole():
    sim = L1Sim(TINY, 32768)
    sim.alloc("a", 1000)
    sim.alloc("b", 2000)
    sim.alloc("c", 3000)  # sizes are whole 16-byte units: 3008
    assert (sim.addr["a"], sim.addr["b"], sim.addr["c"]) == (TOP - 1008, TOP - 3008, TOP - 6016)
    sim.free("a")  # a 1008-byte hole at the top
    sim.alloc("d", 1500)  # does not fit the hole: goes below c
    assert sim.addr["d"] == TOP - 6016 - 1504
    sim.reallocate("b")  # freed, then placed as high as it fits: into the hole it joins
    assert sim.addr["b"] == TOP - 2000
    sim.reallocate("c")
    assert sim.addr["c"] == TOP - 2000 - 3008


def test_a_move_allocates_the_copy_before_freeing_the_original():
    sim = L1Sim(TINY, 32768)
    sim.alloc("x", 4000)
    sim.move("x", 4000)
    assert sim.addr["x"] == TOP - 8000 and sim.peak == 8000
    sim.move("x", 0)  # to DRAM
    assert "x" not in sim.addr and sim.l1.allocated == 0


def test_circular_buffers_must_end_below_the_lowest_buffer():
    sim = L1Sim(TINY, 32768)
    room = TOP - 100_000 - BASE
    sim.run([Program((Alloc("L1", 100_000, "out"),), cb=room, label="op")])  # ends exactly at the buffer
    assert sim.peak == room + 100_000
    try:
        sim.run([Program((Alloc("L1", 16),), cb=room, label="op")])  # a temporary below it: clash
    except DoesNotFit as err:
        assert "circular buffers end at" in str(err)
    else:
        raise AssertionError("the clash was not detected")


def _run_on_emulator(graph, tmp_path):
    path = tmp_path / "model.py"
    path.write_text(render_module(graph, "wormhole-n150"))  # TARGET is only a label here
    module = load_module(path)
    ttnn = emulated_ttnn(TINY)
    module.ttnn = ttnn
    device = ttnn.open_device(device_id=0, **module.DEVICE_PARAMS)
    try:
        model = model_class(module)(device, to_ttnn(host_weights(graph), ttnn))
        shape = graph.nodes[0].out.shape
        model.forward(to_device_input(ttnn, module, torch.rand(shape) * 255, device))
        return device.peak_l1_per_core()
    finally:
        ttnn.close_device(device)


def _check_on_emulator(graph, tmp_path):
    planned = plan_graph(graph, TINY)
    peak = _run_on_emulator(planned, tmp_path)  # raises DeviceMemoryError where L1 does not fit
    assert peak == max(n.plan.l1_peak_per_core for n in planned.nodes)
    assert peak <= TINY.l1_budget()


def test_plan_with_spills_runs_on_the_emulator_at_its_simulated_peak(tmp_path):
    _check_on_emulator(_chain(), tmp_path)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(g=random_graphs())
def test_random_plans_run_on_the_emulator_at_their_simulated_peak(g, tmp_path):
    _check_on_emulator(g, tmp_path)
