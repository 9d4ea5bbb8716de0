"""Deterministic synthetic street-like scenes with their panoptic ground truth: the demo's default
input, test images, and the training set of `benchmarks/train_scenes.py`.

A scene is drawn in fractions of the image size, so any (width, height) gives the same layout:
sky on top, a row of buildings, a road in perspective with a sidewalk on each side, and a few
car- and person-like blobs on it. Colours are close to real street photos (not the Cityscapes
palette), so nothing here hands a model its own label colours. `seed` varies the building heights
and object placement; the same (size, seed) always gives byte-identical pixels.

Every stroke paints the picture, a semantic map (Cityscapes train ids, the model's 19 classes) and an
instance map (0 = stuff, else the thing's number) at once, so the labels are exact and occlusion is
what the painting order makes it. `varied=True` adds what makes the scenes a task to learn rather
than one picture: lighting and tint, texture noise, trees, more cars (overlapping, drawn far to near)
and people of more sizes, on the road too. It draws those from its own random stream, so the plain
scenes (`varied=False`, the demo's `:scenes`) are the pictures they always were.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
TROUSERS = (40, 40, 50)
FOLIAGE = [(60, 110, 50), (80, 130, 60), (45, 90, 45)]
TRUNK = (90, 70, 50)

# Cityscapes train ids (Detectron2's contiguous ids for cityscapes_fine_panoptic_*).
ROAD_ID, SIDEWALK_ID, BUILDING_ID, VEGETATION_ID, SKY_ID, PERSON_ID, CAR_ID = 0, 1, 2, 8, 10, 11, 13
CLASSES = {
    ROAD_ID: "road",
    SIDEWALK_ID: "sidewalk",
    BUILDING_ID: "building",
    VEGETATION_ID: "vegetation",
    SKY_ID: "sky",
    PERSON_ID: "person",
    CAR_ID: "car",
}


@dataclass(frozen=True)
class Scene:
    image: Image.Image  # RGB
    semantic: np.ndarray  # HxW uint8, Cityscapes train id per pixel
    instance: np.ndarray  # HxW int32, 0 on stuff, 1..n numbering the things

    def panoptic(self, label_divisor: int) -> np.ndarray:
        """HxW int64 panoptic ids as Detectron2's post-processing writes them: class x label_divisor
        (+ the instance number for things)."""
        return self.semantic.astype(np.int64) * label_divisor + self.instance


class _Canvas:
    """Paints an RGB picture, its semantic map and its instance map with the same strokes."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.images = (
            Image.new("RGB", (width, height), SKY),
            Image.new("L", (width, height), SKY_ID),
            Image.new("I", (width, height), 0),
        )
        self.draws = tuple(ImageDraw.Draw(i) for i in self.images)

    def px(self, fx: float, fy: float) -> tuple[int, int]:
        return round(fx * self.width), round(fy * self.height)

    def paint(self, shape: str, xy, colour, label: int, instance: int = 0, **kwargs) -> None:
        """`shape` is an ImageDraw method (rectangle, polygon, ellipse, line)."""
        for draw, fill in zip(self.draws, (colour, label, instance), strict=True):
            getattr(draw, shape)(xy, fill=fill, **kwargs)


def street_scene(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB street scene of the given size."""
    return street_panoptic(width, height, seed).image


def street_panoptic(width: int, height: int, seed: int = 0, varied: bool = False) -> Scene:
    """A street scene of the given size and its ground truth (module docstring)."""
    rng = random.Random(seed)
    vary = random.Random(f"varied {seed}") if varied else None
    c = _Canvas(width, height)
    px = c.px
    horizon = 0.5
    _buildings(c, rng, horizon)
    if vary:
        _trees(c, vary, horizon)
    # Ground is sidewalk; the road is a trapezoid on it narrowing to the horizon.
    c.paint("rectangle", [px(0.0, horizon), px(1.0, 1.0)], SIDEWALK, SIDEWALK_ID)
    c.paint("polygon", [px(0.1, 1.0), px(0.45, horizon), px(0.55, horizon), px(0.9, 1.0)], ROAD, ROAD_ID)
    for i in range(6):  # dashed centre line, dashes shrinking with distance
        y0 = horizon + (1 - horizon) * (i / 6) ** 1.5
        y1 = horizon + (1 - horizon) * ((i + 0.5) / 6) ** 1.5
        c.paint("line", [px(0.5, y0), px(0.5, y1)], LANE_MARK, ROAD_ID, width=max(1, round(width * 0.004 * (i + 1))))

    # Each thing's colour is drawn with its place, in the order the scenes were always drawn in.
    things: list[tuple[Callable[..., None], dict[str, Any]]] = [
        (
            _car,
            {
                "x": 0.15 + 0.3 * i + rng.uniform(-0.04, 0.04),
                "y": rng.uniform(0.72, 0.9),
                "colour": rng.choice(CAR_COLOURS),
            },
        )
        for i in range(rng.randint(2, 3))
    ]
    things += [
        (_person, {"x": rng.choice([0.05, 0.9]) + 0.04 * i, "y": rng.uniform(0.8, 0.95), "colour": rng.choice(CLOTHES)})
        for i in range(rng.randint(1, 2))
    ]
    if vary:
        things = [(draw, {**where, "colour": _any_colour(vary)}) for draw, where in things]
        things += [
            (_car, {"x": vary.uniform(0.0, 0.85), "y": vary.uniform(0.6, 0.97), "colour": _any_colour(vary)})
            for _ in range(vary.randint(0, 3))
        ]
        things += [
            (
                _person,
                {
                    "x": vary.uniform(0.02, 0.98),
                    "y": vary.uniform(0.62, 0.98),
                    "colour": _any_colour(vary),
                    "size": vary.uniform(0.8, 1.6),
                },
            )
            for _ in range(vary.randint(0, 3))
        ]
        things.sort(key=lambda t: t[1]["y"])  # far to near: nearer things occlude farther ones
    for number, (draw, where) in enumerate(things, start=1):
        draw(c, number, **where)

    image = np.asarray(c.images[0], dtype=np.float64)
    amplitude = 6
    if vary:  # lighting: overall brightness and a colour tint; texture: stronger noise
        image = image * vary.uniform(0.6, 1.3) * np.array([vary.uniform(0.9, 1.1) for _ in range(3)])
        amplitude = vary.randint(4, 20)
    # Sensor noise so regions are not perfectly flat (a model sees texture, not paint).
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, size=(height, width, 3))
    pixels = np.clip(np.round(image).astype(np.int16) + noise, 0, 255).astype(np.uint8)
    semantic = np.asarray(c.images[1], dtype=np.uint8)
    instance = np.asarray(c.images[2], dtype=np.int32)
    # Things drawn over entirely (or too small to cover a pixel) leave no pixel: number the rest 1..n.
    present = np.unique(instance[instance > 0])
    renumber = np.zeros(int(instance.max()) + 1, dtype=np.int32)
    renumber[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return Scene(Image.fromarray(pixels, "RGB"), semantic.copy(), renumber[instance])


def _buildings(c: _Canvas, rng: random.Random, horizon: float) -> None:
    px = c.px
    x = 0.0
    while x < 1.0:
        w = rng.uniform(0.08, 0.18)
        top = rng.uniform(0.08, 0.3)
        c.paint("rectangle", [px(x, top), px(min(x + w, 1.0), horizon)], rng.choice(BUILDING_COLOURS), BUILDING_ID)
        wy = top + 0.04
        while wy < horizon - 0.06:  # window rows
            wx = x + 0.015
            while wx + 0.02 < min(x + w, 1.0):
                c.paint("rectangle", [px(wx, wy), px(wx + 0.02, wy + 0.035)], WINDOW, BUILDING_ID)
                wx += 0.035
            wy += 0.07
        x += w


def _trees(c: _Canvas, vary: random.Random, horizon: float) -> None:
    """A few trees in front of the buildings: a trunk and a round crown (all vegetation, as Cityscapes
    labels trunks)."""
    px = c.px
    for _ in range(vary.randint(0, 3)):
        x, r = vary.uniform(0.0, 1.0), vary.uniform(0.04, 0.09)
        top = vary.uniform(0.2, 0.35)
        c.paint("rectangle", [px(x - 0.008, top + r), px(x + 0.008, horizon)], TRUNK, VEGETATION_ID)
        crown = [px(x - r, top), px(x + r, top + 2 * r * c.width / c.height * 0.5)]
        c.paint("ellipse", crown, vary.choice(FOLIAGE), VEGETATION_ID)


def _any_colour(vary: random.Random) -> tuple[int, int, int]:
    return vary.randint(10, 235), vary.randint(10, 235), vary.randint(10, 235)


def _car(c: _Canvas, number: int, x: float, y: float, colour: tuple[int, int, int]) -> None:
    px = c.px
    s = 0.6 + (y - 0.5)  # nearer (lower) cars are larger
    w, h = 0.16 * s, 0.1 * s

    def paint(shape: str, xy, fill) -> None:
        c.paint(shape, xy, fill, CAR_ID, number)

    paint("rectangle", [px(x, y - h), px(x + w, y)], colour)
    paint(
        "polygon",
        [px(x + 0.2 * w, y - h), px(x + 0.3 * w, y - 1.6 * h), px(x + 0.7 * w, y - 1.6 * h), px(x + 0.8 * w, y - h)],
        colour,
    )
    paint(
        "polygon",
        [
            px(x + 0.3 * w, y - 1.05 * h),
            px(x + 0.35 * w, y - 1.5 * h),
            px(x + 0.65 * w, y - 1.5 * h),
            px(x + 0.7 * w, y - 1.05 * h),
        ],
        WINDOW,
    )
    for wx in (x + 0.2 * w, x + 0.8 * w):
        paint("ellipse", [px(wx - 0.1 * w, y - 0.25 * h), px(wx + 0.1 * w, y + 0.15 * h)], TYRE)


def _person(c: _Canvas, number: int, x: float, y: float, colour: tuple[int, int, int], size: float = 1.0) -> None:
    px = c.px
    s = (0.6 + (y - 0.5)) * size
    h = 0.28 * s
    w = 0.025 * s

    def paint(shape: str, xy, fill) -> None:
        c.paint(shape, xy, fill, PERSON_ID, number)

    paint("ellipse", [px(x - w * 0.6, y - h), px(x + w * 0.6, y - h + 0.12 * h * 2)], SKIN)
    paint("rectangle", [px(x - w, y - 0.78 * h), px(x + w, y - 0.4 * h)], colour)
    paint("rectangle", [px(x - w * 0.8, y - 0.4 * h), px(x - 0.1 * w, y)], TROUSERS)
    paint("rectangle", [px(x + 0.1 * w, y - 0.4 * h), px(x + w * 0.8, y)], TROUSERS)
