"""`--bisect` (compiler/bisect.py): which op loses accuracy, on the emulator at 128x256."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from compiler.bisect import bisect
from compiler.cli import VERIFY_PCC_FLOOR, plan_variant
from hardware.targets import get_target
from runtime.images import to_model_input
from runtime.scenes import street_scene
from runtime.weights import host_weights
from tests.conftest import SMALL_SIZE

VICTIM = "backbone.res3.0.conv2"  # a 3x3 conv in the middle of the backbone


@pytest.fixture(scope="module")
def planned(small_model):
    return plan_variant("deeplab_v3_plus", "blackhole-20", SMALL_SIZE, model=small_model).graph


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return to_model_input(street_scene(SMALL_SIZE[1], SMALL_SIZE[0], seed=0))


def test_a_wrong_weight_on_the_device_is_named_as_the_first_divergent_op(planned, image) -> None:
    weights = host_weights(planned)
    w = weights[f"{VICTIM}.weight"]
    # the device's copy only: output channels in the wrong order (the fp32 interpreter reads the graph's)
    weights[f"{VICTIM}.weight"] = dataclasses.replace(w, data=w.data.flip(0).contiguous())
    result = bisect(planned, get_target("blackhole-20"), weights, image, VERIFY_PCC_FLOOR, "emulator")
    names = [r.node for r in result.rows]
    assert result.first_below is not None and result.first_below.node == VICTIM, "\n".join(result.lines())
    assert all(r.stats.pcc >= VERIFY_PCC_FLOOR for r in result.rows[: names.index(VICTIM)])
    assert result.first_below.stats.pcc < 0.5  # wrong channels correlate weakly, not "slightly below"
    lines = result.lines()
    assert len(lines) == len(result.rows) + 3  # title, column heads, one line per op, the verdict
    assert lines[-1].startswith(f"bisect deeplab_v3_plus: first node below PCC {VERIFY_PCC_FLOOR}: {VICTIM} (conv2d")
