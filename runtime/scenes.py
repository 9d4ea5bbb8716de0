"""Deterministic synthetic street-like scenes: the demo's default input and test images.

A scene is drawn in fractions of the image size, so any (width, height) gives the same layout:
sky on top, a row of buildings, a road in perspective with a sidewalk on each side, and a few
car- and person-like blobs on it. Colours are close to real street photos (not the Cityscapes
palette), so nothing here hands a model its own label colours. `seed` varies the building heights
and object placement; the same (size, seed) always gives byte-identical pixels.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

SKY = (135, 175, 215)
ROAD = (88, 88, 92)
SIDEWALK = (170, 160, 150)
LANE_MARK = (225, 225, 215)
BUILDING_COLOURS = [(150, 120, 100), (120, 115, 110), (175, 160, 130), (100, 95, 105)]
WINDOW = (60, 70, 85)
CAR_COLOURS = [(40, 60, 150), (170, 30, 30), (200, 200, 205), (30, 30, 30)]
SKIN = (225, 185, 150)
CLOTHES = [(40, 40, 90), (120, 30, 40), (30, 90, 60)]
TYRE = (20, 20, 20)


def street_scene(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB street scene of the given size."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), SKY)
    d = ImageDraw.Draw(img)

    def px(fx: float, fy: float) -> tuple[int, int]:
        return round(fx * width), round(fy * height)

    horizon = 0.5
    _buildings(d, px, rng, horizon)
    # Ground is sidewalk; the road is a trapezoid on it narrowing to the horizon.
    d.rectangle([px(0.0, horizon), px(1.0, 1.0)], fill=SIDEWALK)
    d.polygon([px(0.1, 1.0), px(0.45, horizon), px(0.55, horizon), px(0.9, 1.0)], fill=ROAD)
    for i in range(6):  # dashed centre line, dashes shrinking with distance
        y0 = horizon + (1 - horizon) * (i / 6) ** 1.5
        y1 = horizon + (1 - horizon) * ((i + 0.5) / 6) ** 1.5
        d.line([px(0.5, y0), px(0.5, y1)], fill=LANE_MARK, width=max(1, round(width * 0.004 * (i + 1))))

    for i in range(rng.randint(2, 3)):
        _car(d, px, rng, x=0.15 + 0.3 * i + rng.uniform(-0.04, 0.04), y=rng.uniform(0.72, 0.9))
    for i in range(rng.randint(1, 2)):
        _person(d, px, rng, x=rng.choice([0.05, 0.9]) + 0.04 * i, y=rng.uniform(0.8, 0.95))

    # Mild sensor noise so regions are not perfectly flat (a model sees texture, not paint).
    noise = np.random.default_rng(seed).integers(-6, 7, size=(height, width, 3))
    pixels = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _buildings(d: ImageDraw.ImageDraw, px, rng: random.Random, horizon: float) -> None:
    x = 0.0
    while x < 1.0:
        w = rng.uniform(0.08, 0.18)
        top = rng.uniform(0.08, 0.3)
        d.rectangle([px(x, top), px(min(x + w, 1.0), horizon)], fill=rng.choice(BUILDING_COLOURS))
        wy = top + 0.04
        while wy < horizon - 0.06:  # window rows
            wx = x + 0.015
            while wx + 0.02 < min(x + w, 1.0):
                d.rectangle([px(wx, wy), px(wx + 0.02, wy + 0.035)], fill=WINDOW)
                wx += 0.035
            wy += 0.07
        x += w


def _car(d: ImageDraw.ImageDraw, px, rng: random.Random, x: float, y: float) -> None:
    s = 0.6 + (y - 0.5)  # nearer (lower) cars are larger
    w, h = 0.16 * s, 0.1 * s
    colour = rng.choice(CAR_COLOURS)
    d.rectangle([px(x, y - h), px(x + w, y)], fill=colour)
    d.polygon(
        [px(x + 0.2 * w, y - h), px(x + 0.3 * w, y - 1.6 * h), px(x + 0.7 * w, y - 1.6 * h), px(x + 0.8 * w, y - h)],
        fill=colour,
    )
    d.polygon(
        [
            px(x + 0.3 * w, y - 1.05 * h),
            px(x + 0.35 * w, y - 1.5 * h),
            px(x + 0.65 * w, y - 1.5 * h),
            px(x + 0.7 * w, y - 1.05 * h),
        ],
        fill=WINDOW,
    )
    for wx in (x + 0.2 * w, x + 0.8 * w):
        d.ellipse([px(wx - 0.1 * w, y - 0.25 * h), px(wx + 0.1 * w, y + 0.15 * h)], fill=TYRE)


def _person(d: ImageDraw.ImageDraw, px, rng: random.Random, x: float, y: float) -> None:
    s = 0.6 + (y - 0.5)
    h = 0.28 * s
    w = 0.025 * s
    d.ellipse([px(x - w * 0.6, y - h), px(x + w * 0.6, y - h + 0.12 * h * 2)], fill=SKIN)
    d.rectangle([px(x - w, y - 0.78 * h), px(x + w, y - 0.4 * h)], fill=rng.choice(CLOTHES))
    d.rectangle([px(x - w * 0.8, y - 0.4 * h), px(x - 0.1 * w, y)], fill=(40, 40, 50))
    d.rectangle([px(x + 0.1 * w, y - 0.4 * h), px(x + w * 0.8, y)], fill=(40, 40, 50))
