"""Deterministic panoptic / semantic visualisations blended over the input image.

Colours are the training dataset's (Detectron2's metadata `stuff_colors`, e.g. COCO panoptic's 133),
else detectron2's builtin CITYSCAPES_CATEGORIES (indexed by train id). Stuff segments
get their class colour. Thing instances get their class colour shaded by a fixed table indexed by
the instance number (Detectron2's Visualizer jitters thing colours randomly; we must not, so the same
prediction always gives the same bytes), and a one-pixel white line along each instance's inner
boundary. The colour layer covers the image at ALPHA = 1/2 (integer arithmetic, no float rounding
differences); void pixels (no segment) show the image unchanged. Images are saved as JPEG at a fixed
quality and 4:2:0 subsampling, written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import converter.detectron2_compat as compat
from converter.atomic import save_image
from runtime.postprocess import VOID, Segmentation

compat.install()
from detectron2.data.datasets.builtin_meta import CITYSCAPES_CATEGORIES  # noqa: E402

ALPHA_256 = 128  # colour layer opacity in 1/256 steps: 128 = 0.5
BOUNDARY = (255, 255, 255)
JPEG_OPTIONS = {"quality": 90, "subsampling": 2, "optimize": False}  # 2 = 4:2:0
# Instance k (1-based) of a class is shaded by INSTANCE_SHADES[(k - 1) % len]: > 0 mixes the class
# colour toward white, < 0 toward black. Alternating signs keep neighbouring numbers apart.
INSTANCE_SHADES = (0.0, 0.35, -0.35, 0.6, -0.6, 0.15, -0.15, 0.5, -0.5)


def class_colors(dataset_colors=(), classes: int = 0) -> np.ndarray:
    """Kx3 uint8, K >= `classes`: row t = colour of class t; the dataset's colours (runtime/postprocess.py
    FusionParams.class_colors), else Cityscapes' by train id, repeated for classes beyond them."""
    if not dataset_colors:
        dataset_colors = [c["color"] for c in sorted(CITYSCAPES_CATEGORIES, key=lambda c: c["trainId"])]
    colors = np.array(dataset_colors, dtype=np.uint8)
    return np.resize(colors, (max(classes, len(colors)), 3))


def instance_color(class_id: int, instance: int, palette: np.ndarray | None = None) -> tuple[int, int, int]:
    base = (class_colors() if palette is None else palette)[class_id].astype(np.float64)
    shade = INSTANCE_SHADES[(instance - 1) % len(INSTANCE_SHADES)]
    target = 255.0 if shade > 0 else 0.0
    r, g, b = (int(v) for v in np.rint(base + (target - base) * abs(shade)))
    return r, g, b


def color_layer(seg: Segmentation, dataset_colors=()) -> tuple[np.ndarray, np.ndarray]:
    """(HxWx3 uint8 colours, HxW bool "covered") for the panoptic map, or the semantic map when the
    model is semantic-only."""
    palette = class_colors(dataset_colors, int(seg.semantic.max()) + 1)
    if seg.panoptic is None:
        return palette[seg.semantic], np.ones(seg.semantic.shape, dtype=bool)
    pan = seg.panoptic
    covered = pan != VOID
    colors = np.zeros(pan.shape + (3,), dtype=np.uint8)
    colors[covered] = palette[pan[covered] // seg.label_divisor]
    for inst in seg.instances:
        colors[pan == inst.panoptic_id] = instance_color(inst.class_id, inst.panoptic_id % seg.label_divisor, palette)
    return colors, covered


def inner_boundary(ids: np.ndarray) -> np.ndarray:
    """HxW bool: pixels with a 4-neighbour of a different id (the image border does not count)."""
    edge = np.zeros(ids.shape, dtype=bool)
    dy = ids[1:, :] != ids[:-1, :]
    dx = ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge


def overlay(image: Image.Image, seg: Segmentation, dataset_colors=()) -> Image.Image:
    """The segmentation drawn over `image` (which must have the segmentation's size), in the dataset's
    class colours (default: Cityscapes')."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint16)
    if pixels.shape[:2] != seg.semantic.shape:
        raise ValueError(
            f"image is {pixels.shape[1]}x{pixels.shape[0]}, segmentation "
            f"{seg.semantic.shape[1]}x{seg.semantic.shape[0]} (width x height)"
        )
    colors, covered = color_layer(seg, dataset_colors)
    blended = (pixels * (256 - ALPHA_256) + colors.astype(np.uint16) * ALPHA_256 + 128) >> 8
    out = np.where(covered[..., None], blended, pixels).astype(np.uint8)
    if seg.instances and seg.panoptic is not None:
        things = np.isin(seg.panoptic, [i.panoptic_id for i in seg.instances])
        out[inner_boundary(seg.panoptic) & things] = BOUNDARY
    return Image.fromarray(out, "RGB")


def save_jpeg(path: Path, image: Image.Image) -> None:
    save_image(path, image, "JPEG", **JPEG_OPTIONS)
