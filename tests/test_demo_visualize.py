"""Panoptic colouring, blending, boundaries, and byte-for-byte reproducible JPEGs."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from converter.atomic import write_text
from runtime.postprocess import VOID, Instance, Segmentation
from runtime.visualize import class_colors, instance_color, overlay, save_jpeg

ROAD_COLOUR, CAR_COLOUR = (128, 64, 128), (0, 0, 142)  # Cityscapes palette, train ids 0 and 13


def _segmentation() -> Segmentation:
    """12x16: road (stuff), one void pixel, two cars 13001 (rows 2-5, cols 2-5) and 13002 (rows 2-9, cols 8-13)."""
    semantic = np.zeros((12, 16), dtype=np.int64)
    panoptic = np.zeros((12, 16), dtype=np.int64)
    semantic[2:6, 2:6] = 13
    panoptic[2:6, 2:6] = 13001
    semantic[2:10, 8:14] = 13
    panoptic[2:10, 8:14] = 13002
    panoptic[11, 0] = VOID
    instances = (Instance(13001, 13, 16, 0.5, (2, 2, 6, 6)), Instance(13002, 13, 48, 0.5, (8, 2, 14, 10)))
    return Segmentation(semantic, panoptic, instances, 1000)


def _grey(w=16, h=12, v=100) -> Image.Image:
    return Image.new("RGB", (w, h), (v, v, v))


def test_palette_is_cityscapes_by_train_id():
    colours = class_colors()
    assert colours.shape == (19, 3)
    assert tuple(colours[0]) == ROAD_COLOUR and tuple(colours[13]) == CAR_COLOUR
    assert tuple(colours[10]) == (70, 130, 180)  # sky


def test_instance_colours_are_class_colour_shades_distinct_per_instance():
    assert instance_color(13, 1) == CAR_COLOUR
    shades = [instance_color(13, k) for k in range(1, 10)]
    assert len(set(shades)) == 9
    assert instance_color(13, 2) == instance_color(13, 2)
    # First shade mixes 35% toward white: 0 + 255 * 0.35 = 89.25 -> 89, 142 + 113 * 0.35 = 181.55 -> 182.
    assert instance_color(13, 2) == (89, 89, 182)


def test_overlay_blends_half_and_half_keeps_void_and_draws_instance_boundaries():
    out = np.asarray(overlay(_grey(), _segmentation()))
    assert tuple(out[11, 8]) == (114, 82, 114)  # road: (100 + 128) / 2 = 114, (100 + 64) / 2 = 82
    assert tuple(out[11, 0]) == (100, 100, 100)  # void: image unchanged
    assert tuple(out[3, 3]) == (50, 50, 121)  # inside car 1: (100 + 142) / 2 = 121
    c2 = instance_color(13, 2)
    assert tuple(out[5, 10]) == tuple((100 + c + 1) // 2 for c in c2)  # inside car 2, its own shade
    for y, x in [(2, 2), (2, 4), (5, 5), (2, 8), (9, 13)]:  # instance edge pixels
        assert tuple(out[y, x]) == (255, 255, 255)
    assert tuple(out[1, 3]) != (255, 255, 255)  # road next to a car: the line is inside the instance


def test_semantic_only_overlay_colours_classes_without_boundaries():
    seg = _segmentation()
    semantic_only = Segmentation(seg.semantic, None, (), 1000)
    out = np.asarray(overlay(_grey(), semantic_only))
    assert tuple(out[2, 2]) == (50, 50, 121) and tuple(out[11, 0]) == (114, 82, 114)


def test_overlay_rejects_an_image_of_another_size():
    with pytest.raises(ValueError, match="segmentation"):
        overlay(_grey(w=20), _segmentation())


_SAVE_SCRIPT = """
import sys
from runtime.scenes import street_scene
from tests.test_demo_visualize import _segmentation
from runtime.visualize import overlay, save_jpeg
save_jpeg(sys.argv[1], overlay(street_scene(16, 12, seed=3), _segmentation()))
"""


def test_saved_jpeg_bytes_are_reproducible_across_processes(tmp_path):
    from runtime.scenes import street_scene

    save_jpeg(tmp_path / "a.jpg", overlay(street_scene(16, 12, seed=3), _segmentation()))
    subprocess.run([sys.executable, "-c", _SAVE_SCRIPT, str(tmp_path / "b.jpg")], check=True)
    a, b = (tmp_path / "a.jpg").read_bytes(), (tmp_path / "b.jpg").read_bytes()
    assert a[:2] == b"\xff\xd8" and a == b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg"]  # no temp files left


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    write_text(tmp_path / "f.txt", "old")

    class Unsaveable(Image.Image):
        def save(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_jpeg(tmp_path / "f.txt", Unsaveable())
    assert (tmp_path / "f.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
