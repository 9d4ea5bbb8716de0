"""Finding, loading and resizing demo inputs."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

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
        loaded = image.load((32, 64))
        assert loaded.mode == "RGB" and loaded.size == (64, 32)
    gray = np.asarray(load_rgb(tmp_path / "c.tiff", (32, 64)))
    assert gray.dtype == np.uint8 and (gray[..., 0] == gray[..., 2]).all()


def test_png_pixels_are_loaded_exactly(tmp_path):
    scene = street_scene(64, 32, seed=1)
    scene.save(tmp_path / "x.png")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "x.png", (32, 64))), np.asarray(scene))


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


def test_only_the_accepted_decoders_are_reachable(tmp_path):
    # A GIF named .png: PIL would decode it by content; anything outside JPEG/PNG/BMP/TIFF is refused.
    street_scene(64, 32, seed=1).save(tmp_path / "disguised.png", format="GIF")
    street_scene(64, 32, seed=2).save(tmp_path / "real.png")
    collected = collect_images(tmp_path)
    assert [s.name for s in collected.images] == ["real"]
    assert collected.skipped == [
        "skipped disguised.png: cannot be read as an image "
        "(cannot identify image file '" + str(tmp_path / "disguised.png") + "')"
    ]


def test_images_above_the_decompression_bomb_limit_are_skipped_not_decoded(tmp_path, monkeypatch):
    street_scene(40, 30, seed=1).save(tmp_path / "big.png")  # 1200 pixels
    street_scene(20, 20, seed=2).save(tmp_path / "small.png")  # 400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL alone would only warn below 2000
    collected = collect_images(tmp_path)
    assert [s.name for s in collected.images] == ["small"]
    assert collected.skipped[0].startswith(
        "skipped big.png: cannot be read as an image (Image size (1200 pixels) exceeds limit of 1000 pixels"
    )


def test_a_file_that_fails_only_when_decoded_is_skipped_when_reached(tmp_path):
    street_scene(640, 320, seed=1).save(tmp_path / "a.jpg", quality=90)
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 3])  # the header is intact, the scan is cut
    street_scene(64, 32, seed=2).save(tmp_path / "b.png")
    collected = collect_images(tmp_path)
    assert [s.name for s in collected.images] == ["a", "b"] and collected.skipped == []  # headers read
    with pytest.raises(ValueError, match=r"cannot be read as an image \(image file is truncated"):
        collected.images[0].load((32, 64))
    assert collected.images[1].load((32, 64)).size == (64, 32)


def test_photos_are_decoded_one_at_a_time_and_jpegs_at_a_reduced_scale(tmp_path, monkeypatch):
    # Six 4000x6000 photos are 432 MB as RGB. Collecting them reads headers only; each is decoded when
    # loaded, a JPEG at the smallest DCT scale still >= the model size (1/8 here: 750x500).
    # benchmarks/demo_memory.py measures what this saves.
    street_scene(600, 400, seed=0).resize((6000, 4000)).save(tmp_path / "photo_0.jpg", quality=90)
    for i in range(1, 6):
        shutil.copy(tmp_path / "photo_0.jpg", tmp_path / f"photo_{i}.jpg")
    decoded = []
    real_load = ImageFile.ImageFile.load

    def load(self):
        if self.tile:  # pixels still to decode (later calls return the decoded ones)
            decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    images = collect_images(tmp_path).images
    assert len(images) == 6 and decoded == []
    for i, source in enumerate(images):
        assert source.load((128, 256)).size == (256, 128)
        assert decoded == [(750, 500)] * (i + 1)


def test_16_bit_and_deflate_tiff_images_give_the_same_input_as_their_8_bit_png(tmp_path):
    # A street scene's luminance (gray: PIL writes 16-bit PNG/TIFF as one channel) and its RGB.
    rgb = street_scene(256, 128, seed=1)
    gray = np.asarray(rgb.convert("L"))
    Image.fromarray(gray, "L").save(tmp_path / "gray8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")  # 8 -> 16 bit: v * 257
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.tif", compression="tiff_adobe_deflate")
    rgb.save(tmp_path / "rgb8.png")
    rgb.save(tmp_path / "rgb8.tif", compression="tiff_adobe_deflate")
    with Image.open(tmp_path / "gray16.png") as img, Image.open(tmp_path / "rgb8.tif") as tif:
        assert img.mode == "I;16" and tif.info["compression"] == "tiff_adobe_deflate"  # what is tested
    size = (64, 128)  # resized too, as the demo does
    for name, like in (("gray16.png", "gray8.png"), ("gray16.tif", "gray8.png"), ("rgb8.tif", "rgb8.png")):
        got, want = (np.asarray(load_rgb(tmp_path / n, size)) for n in (name, like))
        assert np.array_equal(got, want), name
    assert 20 < np.asarray(load_rgb(tmp_path / "gray16.png", size)).mean() < 235  # not clipped to white
