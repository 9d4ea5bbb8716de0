"""Demo inputs: find image files, load them as RGB, resize them to the model's input size.

Image files are data from anywhere: only the decoders of the formats we accept (JPEG, PNG, BMP,
TIFF, by content, whatever the suffix) are ever used, and an image above PIL's decompression-bomb
limit (89 megapixels) is skipped rather than decoded. Files are checked when collected (headers
only) but decoded one at a time when the demo reaches them, straight to the model size (a JPEG at
a reduced DCT scale), so memory does not grow with the number or the size of the photos.

Loading keeps pixels as stored: EXIF orientation is NOT applied, so a result depends only on the
pixel data (the same file gives the same input everywhere). Resizing ignores the aspect ratio,
like the hand-written TTNN demo ("all images are resized to 512x1024"), and uses PIL's bilinear
filter, which widens its support when shrinking (antialiased), so downscaled photos do not alias.
The model input is float RGB on the 0-255 scale: Detectron2's INPUT.FORMAT "RGB" with the
normalisation (PIXEL_MEAN/STD) left to the model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from converter.errors import UserError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")
FORMATS = ("BMP", "JPEG", "PNG", "TIFF")  # the only PIL decoders a file can reach
RESAMPLE = Image.Resampling.BILINEAR
# What PIL raises for a file it cannot decode (truncated, not an image, too large, ...).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@dataclass(frozen=True)
class SourceImage:
    name: str  # output file stem, unique within one run
    load: Callable[[tuple[int, int]], Image.Image]  # (H, W) -> RGB image of that size; decodes on each call


@dataclass(frozen=True)
class Collected:
    images: list[SourceImage]
    skipped: list[str]  # one line per skipped file: "skipped <file>: <why>"


def find_images(path: Path) -> tuple[list[Path], list[str]]:
    """Candidate image files under `path` (a file, or a directory, not recursive), sorted by name,
    and one message per directory entry that is skipped for its file type."""
    path = Path(path)
    if path.is_file():
        return [path], []
    if not path.is_dir():
        raise UserError(f"input {path} does not exist: pass an image file or a directory of images")
    found, skipped = [], []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue  # hidden files (.DS_Store, editor temp files) and sub-directories
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            found.append(entry)
        else:
            skipped.append(f"skipped {entry.name}: not an image file (supported: {', '.join(IMAGE_SUFFIXES)})")
    return found, skipped


def _open(path: Path) -> Image.Image:
    """The file, opened (header read, pixels not decoded) by one of FORMATS' decoders."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # above the limit: refuse, not warn
        return Image.open(path, formats=FORMATS)


def _unreadable(e: Exception) -> str:
    return f"cannot be read as an image ({str(e).splitlines()[0] if str(e) else type(e).__name__})"


def load_rgb(path: Path, size: tuple[int, int]) -> Image.Image:
    """The file's first frame as an RGB image resized to `size` = (H, W); ValueError with a short
    reason if it cannot be decoded."""
    try:
        with _open(path) as img:
            img.draft("RGB", (size[1], size[0]))  # JPEG: decode at the smallest DCT scale >= size
            img.load()
            rgb = _to_rgb(img)
    except _DECODE_ERRORS as e:
        raise ValueError(_unreadable(e)) from e
    return resize_to_model(rgb, size)


# Modes whose samples span 16 bits (PNG/TIFF 16-bit grayscale; "I" is how PIL widens them).
_16_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, 8 bits a sample. PIL's convert clips 16-bit samples to 255 (a 16-bit photo came out
    white); they are scaled instead, exactly inverting the 8 -> 16 bit widening (v * 257)."""
    if img.mode in _16_BIT_MODES:
        samples = np.asarray(img, dtype=np.int64)
        img = Image.fromarray(np.clip((samples + 128) // 257, 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def collect_images(path: Path) -> Collected:
    """The images at `path` whose headers read as an accepted format (decoded later, by `load`);
    the others are listed in `skipped`, not fatal."""
    candidates, skipped = find_images(path)
    readable: list[Path] = []
    for file in candidates:
        try:
            _open(file).close()
            readable.append(file)
        except _DECODE_ERRORS as e:
            skipped.append(f"skipped {file.name}: {_unreadable(e)}")
    if not readable:
        raise UserError(
            f"no readable image at {path}: pass a {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} "
            "file or a directory holding some"
        )
    return Collected(_named(readable), skipped)


def _named(files: list[Path]) -> list[SourceImage]:
    # Output names are file stems; "a.jpg" and "a.png" in one directory keep their suffix apart, and a
    # name still taken ("a.png" -> a_png beside "a_png.jpg") gets a number: one output per image.
    stems = [file.stem for file in files]
    wanted = [file.stem if stems.count(file.stem) == 1 else file.name.replace(".", "_") for file in files]
    taken = set(stems) | set(wanted)
    names: list[str] = []
    for name in wanted:
        if name in names:
            n = 2
            while f"{name}_{n}" in taken:
                n += 1
            name = f"{name}_{n}"
            taken.add(name)
        names.append(name)
    return [SourceImage(name, partial(load_rgb, file)) for name, file in zip(names, files, strict=True)]


def resize_to_model(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` resized to `size` = (height, width) of the model input."""
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), RESAMPLE)


def to_model_input(image: Image.Image) -> torch.Tensor:
    """RGB image -> float32 tensor 1x3xHxW, RGB order, values 0-255."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()
