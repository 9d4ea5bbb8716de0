"""The fitted cost model against Tenstorrent's measured device history of its hand-written Panoptic-DeepLab.

Each measured code state is a plan of ours (benchmarks/measured/<commit>.yaml); planned and costed, it
must land within +-15% of what the device measured, and the 3d736fd9 -> d615fab9 speed-up within 15%.
The expected numbers are the device perf test's figures (sum of device kernel durations, ms), copied
from ../shared/reference/handwritten-pdl-measured-history.md section 2, not produced by the model.
"""

from pathlib import Path

import pytest
import yaml

MEASURED = Path(__file__).resolve().parent.parent / "benchmarks" / "measured"
# commit -> (target, plan, PANOPTIC_DEEPLAB ms, DEEPLAB_V3_PLUS ms), from the history doc (sections 2
# "Main line" and "Later"; PR #44832 measured DeepLabV3+ only).
DEVICE_MS = {
    "3d736fd9": ("blackhole-20", "3d736fd9.yaml", 51.749520, 34.387871),
    "d615fab9": ("blackhole-20", "d615fab9.yaml", 32.661399, 23.648515),
    "6f31950c": ("blackhole-20", "76f4537d.yaml", 31.016904, 21.926462),
    "76f4537d": ("blackhole-20", "76f4537d.yaml", 30.539964, 21.926462),
    "645aa768": ("blackhole-p150", "645aa768-110.yaml", 12.445978, 8.471069),
    "7cc8755a": ("blackhole-p150", "7cc8755a-110.yaml", 7.156261, 4.558418),
    "8382c472": ("blackhole-p150", "04b34050-110.yaml", 6.260000, 4.380000),
    "pr38216": ("blackhole-p150", "04b34050-110.yaml", 6.335498, 4.182858),
    "pr44832": ("blackhole-p150", "04b34050-110.yaml", None, 3.852250),
}
VARIANTS = ("panoptic_deeplab", "deeplab_v3_plus")
# Where the fitted model is known to miss by more than 15% (benchmarks/calibrate.py; README "Performance"):
# Tenstorrent's L1-resident 110-core plans model +15%..+23% slow (per-block conv overheads, weights double
# buffering, packer_l1_acc and later ttnn kernels are not modeled). Strict: a model that reaches them fails here.
MISSES = {
    ("7cc8755a", "panoptic_deeplab"),
    ("8382c472", "panoptic_deeplab"),
    ("pr38216", "panoptic_deeplab"),
    ("pr44832", "deeplab_v3_plus"),
}
MEASURED_POINTS = [
    pytest.param(c, v, marks=pytest.mark.xfail(strict=True, reason="modeled > 15% slow"))
    if (c, v) in MISSES
    else (c, v)
    for c, row in DEVICE_MS.items()
    for v in VARIANTS
    if row[2 + VARIANTS.index(v)] is not None
]


def test_states_table_holds_the_measured_figures():
    states = yaml.safe_load((MEASURED / "states.yaml").read_text())["states"]
    table = {s["commit"]: (s["target"], s["plan"], *(s["measured_ms"].get(v) for v in VARIANTS)) for s in states}
    assert table == DEVICE_MS


@pytest.fixture(scope="module")
def modeled():
    """(commit, variant) -> modeled ms of the state's plan, planned as benchmarks/calibrate.py plans it."""
    from benchmarks.calibrate import load_states, plan_points
    from hardware.targets import get_target
    from passes import cost_model

    return {
        (p.commit, p.variant): cost_model.evaluate(p.graph, get_target(p.target)).total_ms
        for p in plan_points(load_states())
    }


@pytest.mark.slow
@pytest.mark.parametrize(("commit", "variant"), MEASURED_POINTS)
def test_every_measured_state_models_within_15_percent(modeled, commit, variant):
    measured = DEVICE_MS[commit][2 + VARIANTS.index(variant)]
    assert modeled[commit, variant] == pytest.approx(measured, rel=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_speed_up_from_3d736fd9_to_d615fab9_within_15_percent(modeled, variant):
    i = 2 + VARIANTS.index(variant)
    measured = DEVICE_MS["3d736fd9"][i] / DEVICE_MS["d615fab9"][i]  # 1.58x and 1.45x
    assert modeled["3d736fd9", variant] / modeled["d615fab9", variant] == pytest.approx(measured, rel=0.15)


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [
        "panoptic_deeplab",
        pytest.param("deeplab_v3_plus", marks=pytest.mark.xfail(strict=True, reason="modeled 1.57x, -15.6%")),
    ],
)
def test_speed_up_from_645aa768_to_7cc8755a_within_15_percent(modeled, variant):
    """The 110-core step of PR #36287 (every conv in L1): 12.45 -> 7.16 ms measured (1.74x / 1.86x)."""
    i = 2 + VARIANTS.index(variant)
    measured = DEVICE_MS["645aa768"][i] / DEVICE_MS["7cc8755a"][i]
    assert modeled["645aa768", variant] / modeled["7cc8755a", variant] == pytest.approx(measured, rel=0.15)
