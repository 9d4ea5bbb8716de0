"""runtime/quality.py on hand-made inputs whose metrics are worked out by hand in the comments."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from runtime.postprocess import FusionParams
from runtime.quality import HeadStats, Quality, compare, head_stats, panoptic_quality

THINGS = tuple(range(11, 19))  # Cityscapes' contiguous thing ids
CAR, ROAD, SIDEWALK = 13, 0, 1
VOID = -1


def pq(pred, target):
    return panoptic_quality(np.array(pred), np.array(target), THINGS, num_classes=19, label_divisor=1000)


# 4x4 maps: road (stuff, id 0) on the left half, one car (class 13, instance 1) on the right half.
TARGET = [[0, 0, 13001, 13001]] * 4


def test_identical_maps_are_perfect():
    assert pq(TARGET, TARGET) == (1.0, 1.0, 1.0)


def test_a_shrunk_car_lowers_sq_only():
    # The car loses its bottom row to the road. Road: IoU 8/10; car: IoU 6/8; both still match
    # (IoU > 0.5): SQ = RQ-weighted mean of IoUs = (0.8 + 0.75) / 2, RQ = 1.
    pred = [[0, 0, 13001, 13001]] * 3 + [[0, 0, 0, 0]]
    assert pq(pred, TARGET) == pytest.approx((0.775, 0.775, 1.0))


def test_a_car_split_in_two_is_a_match_and_a_false_positive():
    # Instance 1 keeps rows 0-2 (IoU 6/8, a match), instance 2 takes row 3 (IoU 2/8: a false positive).
    # Car: SQ 0.75, RQ = TP / (TP + FP/2 + FN/2) = 1 / 1.5, PQ 0.5; road: 1, 1, 1. Means over the two classes.
    pred = [[0, 0, 13001, 13001]] * 3 + [[0, 0, 13002, 13002]]
    assert pq(pred, TARGET) == pytest.approx((0.75, 0.875, (1 + 2 / 3) / 2))


def test_a_car_split_in_halves_matches_nothing():
    # Each half has IoU 4/8 = 0.5, not above 0.5: car TP 0, FP 2, FN 1 -> PQ = SQ = RQ = 0; road 1.
    pred = [[0, 0, 13001, 13001]] * 2 + [[0, 0, 13002, 13002]] * 2
    assert pq(pred, TARGET) == pytest.approx((0.5, 0.5, 0.5))


def test_a_wrong_stuff_class_is_a_false_negative_and_a_false_positive():
    # The road is called sidewalk: road FN 1, sidewalk FP 1 (both PQ 0), car perfect: PQ = 1/3.
    pred = [[1000, 1000, 13001, 13001]] * 4
    assert pq(pred, TARGET) == pytest.approx((1 / 3, 1 / 3, 1 / 3))


def test_reference_void_is_ignored():
    # The reference leaves the top-left two pixels void (a stuff region under STUFF_AREA); the TTNN
    # output calls them road: not a mistake (road IoU = 6 / (8 - 2 void + 6 - 6) = 1).
    target = [[VOID, VOID, 13001, 13001]] + [[0, 0, 13001, 13001]] * 3
    assert pq(TARGET, target) == (1.0, 1.0, 1.0)


def test_head_stats():
    ref = torch.tensor([0.0, 1.0, 2.0, 3.0])  # mean 1.5, std (n-1) sqrt(5/3) = 1.29099
    s = head_stats(2 * ref + 0.5, ref)  # mean 3.5, std 2x
    assert s.pcc == pytest.approx(1.0)
    assert s.gain == pytest.approx(2.0)
    assert s.bias == pytest.approx(2.0 / 1.290994)
    assert s.max_abs_error == pytest.approx(3.5)  # at the last element: 6.5 - 3


def _logits(*classes):
    return torch.tensor(classes, dtype=torch.float32).reshape(1, len(classes), 1, -1)


def test_semantic_agreement_over_all_and_confident_pixels():
    # Reference: pixels 0 and 1 decided (margin 4), 2 and 3 nearly tied (margin 0.1). Its 8 logits have
    # std 1.837, so the confident rule keeps margins >= 0.367: pixels 0 and 1.
    ref = _logits([4, 0, 0.1, 0], [0, 4, 0, 0.1])
    got = _logits([4, 0, 0, 0], [0, 4, 0.1, 0.1])  # pixel 2 flips, pixel 3 agrees
    fusion = FusionParams(THINGS, 1000, stuff_area=0, center_threshold=0.1, nms_kernel=7, top_k=200, center_stride=4)
    q = compare({"sem_seg": got}, {"sem_seg": ref}, fusion)
    assert (q.semantic_agreement, q.confident_agreement, q.confident_fraction) == (0.75, 1.0, 0.5)
    assert q.pq is None and q.instance_ratio is None  # semantic-only: no panoptic metrics


def _passing() -> Quality:
    ok = HeadStats(pcc=0.9999, gain=1.0, bias=0.0, max_abs_error=0.1)
    return Quality(
        heads={"sem_seg": ok, "center": ok, "offset": ok},
        semantic_agreement=0.99,
        confident_agreement=1.0,
        confident_fraction=0.9,
        pq=0.95,
        sq=0.95,
        rq=1.0,
        instances=100,
        reference_instances=100,
    )


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(pq=0.89), "PQ 0.8900 < 0.9"),
        (dict(pq=math.nan), "PQ nan < 0.9"),
        (dict(instances=111), "instances 111 vs 100"),
        (dict(instances=89), "instances 89 vs 100"),
        (dict(heads={"sem_seg": HeadStats(0.9989, 1.0, 0.0, 0.1)}), "sem_seg PCC 0.99890 < 0.999"),
        (dict(heads={"sem_seg": HeadStats(0.9999, 0.969, 0.0, 0.1)}), "sem_seg gain 0.9690 outside 1 +- 0.03"),
        (dict(heads={"center": HeadStats(0.9949, 1.0, 0.0, 0.1)}), "center PCC 0.99490 < 0.995"),
        (dict(heads={"center": HeadStats(0.9999, 1.0, 0.021, 0.1)}), "center bias +0.0210 std, |bias| >= 0.02"),
        (dict(heads={"offset": HeadStats(0.9999, 1.0, -0.03, 0.1)}), "offset bias -0.0300 std, |bias| >= 0.02"),
    ],
)
def test_each_bound_is_enforced(change, named):
    base = _passing()
    assert base.violations() == []
    if "heads" in change:
        change = {"heads": {**base.heads, **change["heads"]}}
    (violation,) = replace(base, **change).violations()
    assert violation.startswith(named)


def test_edges_of_the_bounds_pass():
    base = _passing()
    edge = HeadStats(pcc=0.999, gain=1.03, bias=0.0199, max_abs_error=9.0)
    q = replace(
        base,
        pq=0.9,
        instances=110,
        heads={"sem_seg": edge, "center": replace(edge, pcc=0.995), "offset": replace(edge, pcc=0.995, bias=-0.0199)},
    )
    assert q.violations() == []
