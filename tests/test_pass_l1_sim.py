"""l1_sim: the planner's address-level L1 model, against hand-computed addresses.

Whether planned programs really fit is judged by real ttnn on a mock device (tests/test_ttnn_mock.py),
not by this model nor by the emulator (numerics only).
"""

import pytest

from passes.l1_sim import Alloc, DoesNotFit, L1Sim, Program
from tests.test_pass_memory_plan import TINY

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
    from passes.l1_sim import CB_GUARD

    sim = L1Sim(TINY, 32768)
    room = TOP - 100_000 - BASE - CB_GUARD
    sim.run([Program((Alloc("L1", 100_000, "out"),), cb=room, label="op")])  # ends CB_GUARD below the buffer
    assert sim.peak == room + 100_000
    with pytest.raises(DoesNotFit, match="circular buffers end at"):  # one byte closer: refused
        L1Sim(TINY, 32768).run([Program((Alloc("L1", 100_000, "out"),), cb=room + 1, label="op")])
    try:
        sim.run([Program((Alloc("L1", 16),), cb=room, label="op")])  # a temporary below it: clash
    except DoesNotFit as err:
        assert "circular buffers end at" in str(err)
    else:
        raise AssertionError("the clash was not detected")
