"""Demo inputs: find image files, load them as RGB, resize them to the model's input size.

Loading keeps pixels as stored: EXIF orientation is NOT applied, so a result depends only on the
pixel data (the same file gives the same input everywhere). Resizing ignores the aspect ratio,
like the hand-written TTNN demo ("all images are resized to 512x1024"), and uses PIL's bilinear
filter, which widens its support when shrinking (antialiased), so downscaled photos do not alias.
The model input is float RGB on the 0-255 scale: Detectron2's INPUT.FORMAT "RGB" with the
normalisation (PIXEL_MEAN/STD) left to the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from converter.errors import UserError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")
RESAMPLE = Image.Resampling.BILINEAR
# What PIL raises for a file it cannot decode (truncated, not an image, too large, ...).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


@dataclass(frozen=True)
class SourceImage:
    name: str  # output file stem, unique within one run
    image: Image.Image  # RGB, original size


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


def load_rgb(path: Path) -> Image.Image:
    """The file's first frame as an RGB image; ValueError with a short reason if it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except _DECODE_ERRORS as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot be read as an image ({reason})") from e


def collect_images(path: Path) -> Collected:
    """All readable images at `path`; unreadable ones are listed in `skipped`, not fatal."""
    candidates, skipped = find_images(path)
    loaded: list[tuple[Path, Image.Image]] = []
    for file in candidates:
        try:
            loaded.append((file, load_rgb(file)))
        except ValueError as e:
            skipped.append(f"skipped {file.name}: {e}")
    if not loaded:
        raise UserError(f"no readable image at {path}: pass a {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} "
                        "file or a directory holding some")
    return Collected(_named(loaded), skipped)


def _named(loaded: list[tuple[Path, Image.Image]]) -> list[SourceImage]:
    # Output names are file stems; "a.jpg" and "a.png" in one directory keep their suffix apart.
    stems = [file.stem for file, _ in loaded]
    return [SourceImage(file.stem if stems.count(file.stem) == 1 else file.name.replace(".", "_"), img)
            for file, img in loaded]


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
