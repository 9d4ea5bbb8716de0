"""Finding, loading and resizing demo inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from converter.errors import UserError
from runtime.images import collect_images, find_images, load_rgb, resize_to_model, to_model_input
from runtime.scenes import street_scene


def _write_images(d):
    street_scene(64, 32, seed=1).save(d / "b.png")
    street_scene(64, 32, seed=2).save(d / "a.JPG", quality=95)
    street_scene(64, 32, seed=3).convert("L").save(d / "c.tiff")
    street_scene(64, 32, seed=4).save(d / "d.bmp")


def test_directory_is_listed_sorted_with_supported_suffixes_only(tmp_path):
    _write_images(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    found, skipped = find_images(tmp_path)
    assert [p.name for p in found] == ["a.JPG", "b.png", "c.tiff", "d.bmp"]
    assert skipped == ["skipped notes.txt: not an image file (supported: .bmp, .jpeg, .jpg, .png, .tif, .tiff)"]


def test_unreadable_file_is_skipped_with_one_line_and_the_rest_loaded(tmp_path):
    _write_images(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    collected = collect_images(tmp_path)
    assert [s.name for s in collected.images] == ["a", "b", "c", "d"]
    assert len(collected.skipped) == 1
    line = collected.skipped[0]
    assert line.startswith("skipped broken.jpg: cannot be read as an image (") and "\n" not in line


def test_images_load_as_rgb_uint8_whatever_the_file_mode(tmp_path):
    _write_images(tmp_path)
    for image in collect_images(tmp_path).images:
        assert image.image.mode == "RGB" and image.image.size == (64, 32)
    gray = np.asarray(load_rgb(tmp_path / "c.tiff"))
    assert gray.dtype == np.uint8 and (gray[..., 0] == gray[..., 2]).all()


def test_png_pixels_are_loaded_exactly(tmp_path):
    scene = street_scene(64, 32, seed=1)
    scene.save(tmp_path / "x.png")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "x.png")), np.asarray(scene))


def test_same_stem_in_two_formats_gets_two_output_names(tmp_path):
    street_scene(64, 32, seed=1).save(tmp_path / "a.png")
    street_scene(64, 32, seed=1).save(tmp_path / "a.jpg")
    assert [s.name for s in collect_images(tmp_path).images] == ["a_jpg", "a_png"]


def test_nothing_readable_is_a_user_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="no readable image"):
        collect_images(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        collect_images(tmp_path / "missing")


def test_resize_gives_model_size_and_model_input_is_rgb_0_255():
    image = Image.new("RGB", (300, 200), (10, 20, 250))
    resized = resize_to_model(image, (128, 256))
    assert resized.size == (256, 128)
    x = to_model_input(resized)
    assert x.shape == (1, 3, 128, 256) and x.dtype == torch.float32
    assert x[0, :, 5, 7].tolist() == [10.0, 20.0, 250.0]


def test_resize_averages_when_shrinking():
    # A 1-pixel checkerboard shrunk 4x must come out mid-grey (an unfiltered resize would alias).
    board = (np.indices((64, 128)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = np.asarray(resize_to_model(Image.fromarray(board).convert("RGB"), (16, 32)))
    assert np.abs(small[2:-2, 2:-2].astype(int) - 128).max() <= 2
