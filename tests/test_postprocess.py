"""Panoptic fusion on hand-made head outputs whose right answer is known by construction."""

import numpy as np
import pytest
import torch

from converter.model import load_config
from runtime.postprocess import VOID, FusionParams, break_center_ties, fuse

H, W = 128, 256
ROAD, POLE, SKY, PERSON, CAR = 0, 5, 10, 11, 13


@pytest.fixture(scope="module")
def params() -> FusionParams:
    return FusionParams.from_config(load_config())


def test_params_are_detectron2_cityscapes_values(params):
    from dataclasses import replace

    from detectron2.data.datasets.builtin_meta import CITYSCAPES_CATEGORIES

    assert replace(params, class_colors=()) == FusionParams(
        thing_ids=(11, 12, 13, 14, 15, 16, 17, 18),
        label_divisor=1000,
        stuff_area=2048,
        center_threshold=0.1,
        nms_kernel=7,
        top_k=200,
        center_stride=4,
    )
    by_train_id = sorted(CITYSCAPES_CATEGORIES, key=lambda c: c["trainId"])
    assert params.class_colors == tuple(tuple(c["color"]) for c in by_train_id)


def _logits(labels: np.ndarray) -> torch.Tensor:
    """19-class logits whose argmax is `labels`."""
    out = torch.zeros(1, 19, H, W)
    out[0].scatter_(0, torch.from_numpy(labels)[None].long(), 5.0)
    return out


def _scene():
    """Sky on top, road below, a 10x10 pole patch (too small for stuff), two cars and a person.

    Each thing has a Gaussian center peak and offsets pointing every one of its pixels at that center.
    Returns the head outputs and the thing boxes (y0, y1, x0, x1) with their centers.
    """
    labels = np.full((H, W), ROAD)
    labels[:48] = SKY
    labels[100:110, 5:15] = POLE
    things = [(CAR, (60, 90, 20, 70)), (PERSON, (50, 95, 110, 130)), (CAR, (60, 90, 170, 230))]
    center = torch.zeros(1, 1, H, W)
    offset = torch.zeros(1, 2, H, W)
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    centers = []
    for cls, (y0, y1, x0, x1) in things:
        labels[y0:y1, x0:x1] = cls
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        centers.append((cy, cx))
        center[0, 0] = torch.maximum(center[0, 0], torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * 4.0**2)))
        offset[0, 0, y0:y1, x0:x1] = cy - ys[y0:y1, x0:x1]
        offset[0, 1, y0:y1, x0:x1] = cx - xs[y0:y1, x0:x1]
    return {"sem_seg": _logits(labels), "center": center, "offset": offset}, things, centers


def test_things_become_numbered_instances_of_their_class(params):
    outputs, things, _ = _scene()
    seg = fuse(outputs, params)
    # Instances are numbered per class in center order (row-major over the center map).
    expected_ids = [13001, 11001, 13002]
    for pid, (_, (y0, y1, x0, x1)) in zip(expected_ids, things, strict=True):
        assert (seg.panoptic[y0:y1, x0:x1] == pid).all()
    assert [(i.panoptic_id, i.class_id, i.area) for i in seg.instances] == [
        (11001, PERSON, 45 * 20),
        (13001, CAR, 30 * 50),
        (13002, CAR, 30 * 60),
    ]
    assert seg.instances[1].box == (20, 60, 70, 90)


def test_stuff_keeps_class_id_and_small_stuff_becomes_void(params):
    outputs, _, _ = _scene()
    seg = fuse(outputs, params)
    assert (seg.panoptic[:48] == SKY * 1000).all()
    assert seg.panoptic[120, 128] == ROAD * 1000
    assert (seg.panoptic[100:110, 5:15] == VOID).all()  # 100 px < STUFF_AREA 2048
    assert (seg.semantic[100:110, 5:15] == POLE).all()  # the semantic map keeps it


def test_offsets_decide_which_center_a_thing_pixel_joins(params):
    outputs, things, centers = _scene()
    # Point the left car's right half at the right car's center: it joins that instance.
    y0, y1, x0, x1 = things[0][1]
    cy, cx = centers[2]
    ys, xs = torch.meshgrid(torch.arange(y0, y1).float(), torch.arange(45, x1).float(), indexing="ij")
    outputs["offset"][0, 0, y0:y1, 45:x1] = cy - ys
    outputs["offset"][0, 1, y0:y1, 45:x1] = cx - xs
    seg = fuse(outputs, params)
    assert (seg.panoptic[y0:y1, x0:45] == 13001).all()
    assert (seg.panoptic[y0:y1, 45:x1] == 13002).all()


def test_no_center_above_threshold_means_no_instances(params):
    outputs, things, _ = _scene()
    outputs["center"] = outputs["center"] * 0.05  # every peak below CENTER_THRESHOLD 0.1
    seg = fuse(outputs, params)
    assert seg.instances == ()
    y0, y1, x0, x1 = things[0][1]
    assert (seg.panoptic[y0:y1, x0:x1] == VOID).all()  # thing pixels without an instance


def test_semantic_only_outputs_give_no_panoptic_map(params):
    outputs, _, _ = _scene()
    seg = fuse({"sem_seg": outputs["sem_seg"]}, params)
    assert seg.panoptic is None and seg.instances == ()
    assert seg.semantic[0, 0] == SKY and seg.semantic[75, 40] == CAR


def test_batched_outputs_are_rejected(params):
    outputs, _, _ = _scene()
    outputs["sem_seg"] = outputs["sem_seg"].repeat(2, 1, 1, 1)
    with pytest.raises(ValueError, match="1xCxHxW"):
        fuse(outputs, params)


def _centers(center: torch.Tensor, params: FusionParams) -> list[tuple[int, int]]:
    """Detectron2's own peak finding on a 1xHxW heatmap."""
    from detectron2.projects.panoptic_deeplab.post_processing import find_instance_center

    found = find_instance_center(
        center, threshold=params.center_threshold, nms_kernel=params.nms_kernel, top_k=params.top_k
    )
    return sorted(map(tuple, found.tolist()))


def _upsampled_bumps() -> torch.Tensor:
    """A center heatmap as the model makes it: smooth bumps at 1/4 resolution (two on the top border),
    upsampled 4x bilinear in fp32 as Detectron2's instance head does; 1xHxW."""
    h, w = H // 4, W // 4
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    low = torch.zeros(h, w)
    for cy, cx, sigma in [(10.3, 8.6, 2.5), (20.8, 30.2, 3.0), (12.1, 50.4, 4.0), (0.0, 22.3, 2.0), (0.0, 40.3, 2.5)]:
        low = torch.maximum(low, 0.9 * torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * sigma**2)))
    return torch.nn.functional.interpolate(low[None, None], scale_factor=4, mode="bilinear", align_corners=False)[0]


def test_peak_ties_of_a_bfloat16_heatmap_are_broken_as_fp32_decides(params):
    fp32 = _upsampled_bumps()
    expected = _centers(fp32, params)  # the border bumps give two peaks each: rows 0 and 1 are copies
    assert len(expected) == 7 and sum(y == 0 for y, _ in expected) == sum(y == 1 for y, _ in expected) == 2
    rounded = fp32.to(torch.bfloat16).float()
    assert len(_centers(rounded, params)) > len(expected)  # the plateaus: what the fix is for
    found = _centers(break_center_ties(rounded, params), params)
    assert len(found) == len(expected)
    assert all(abs(y - ey) <= 2 and abs(x - ex) <= 2 for (y, x), (ey, ex) in zip(found, expected, strict=True)), (
        found,
        expected,
    )


def test_an_fp32_heatmap_keeps_detectron2s_peaks(params):
    fp32 = _upsampled_bumps()
    assert _centers(break_center_ties(fp32, params), params) == _centers(fp32, params)
