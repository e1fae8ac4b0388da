"""Procedural scenes: textured shapes on textured backgrounds, with exact instance masks.

The default training data when no dataset is on disk. Each sample is drawn from
``np.random.default_rng([seed, index])``, so it does not depend on access order.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from .dataset import InstanceDataset
from .sample import InstanceSample

SHAPES = ("ellipse", "polygon", "ring", "bar")
PATTERNS = ("flat", "noise", "stripes", "checker")


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image: H x W x 3 uint8 RGB.
        masks: N x H x W bool, disjoint (occlusion resolved), each >= ``min_area`` px.
        shapes: N indices into ``SHAPES``.
        background: H x W x 3 uint8, the image before any object was painted.
    """

    image: np.ndarray
    masks: np.ndarray
    shapes: list[int]
    background: np.ndarray


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    """A size x size float32 pattern in [0, 1] of a random kind from ``PATTERNS``."""
    kind = PATTERNS[rng.integers(len(PATTERNS))]
    if kind == "flat":
        return np.full((size, size), 0.5, dtype=np.float32)
    if kind == "noise":
        cells = int(rng.integers(3, 12))
        return cv2.resize(rng.random((cells, cells), dtype=np.float32), (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, period = rng.uniform(0, np.pi), rng.uniform(4, 16)
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
    return ((xs // period + ys // period) % 2).astype(np.float32)


def _texture(rng: np.random.Generator, size: int, hue: float) -> np.ndarray:
    """size x size x 3 uint8: a pattern blending two colours of ``hue`` (in [0, 1))."""
    saturation, value = rng.uniform(0.4, 1.0), rng.uniform(0.35, 1.0)
    light = np.array(colorsys.hsv_to_rgb(hue, saturation, value), dtype=np.float32)
    dark = np.array(colorsys.hsv_to_rgb(hue, saturation, value * rng.uniform(0.3, 0.7)), dtype=np.float32)
    weight = _pattern(rng, size)[..., None]
    texture = 255 * (weight * light + (1 - weight) * dark) + rng.normal(0, 4, (size, size, 3))
    return texture.clip(0, 255).astype(np.uint8)


def _shape(rng: np.random.Generator, size: int) -> tuple[int, np.ndarray]:
    """A random shape index and its size x size bool mask (cv2, no anti-aliasing: exact)."""
    kind = int(rng.integers(len(SHAPES)))
    canvas = np.zeros((size, size), dtype=np.uint8)
    center = rng.uniform(0.15, 0.85, 2) * size
    radius = rng.uniform(0.08, 0.3, 2) * size
    angle = rng.uniform(0, 180)
    if SHAPES[kind] in ("ellipse", "ring"):
        axes = tuple(int(r) for r in radius)
        cv2.ellipse(canvas, tuple(int(c) for c in center), axes, angle, 0, 360, 1, -1)
        if SHAPES[kind] == "ring":
            inner = tuple(int(r * rng.uniform(0.4, 0.7)) for r in radius)
            cv2.ellipse(canvas, tuple(int(c) for c in center), inner, angle, 0, 360, 0, -1)
    elif SHAPES[kind] == "polygon":
        count = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, count))
        radii = radius.max() * rng.uniform(0.5, 1.0, count)
        vertices = center + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
        cv2.fillPoly(canvas, [vertices.astype(np.int32)], 1)
    else:
        length, width = rng.uniform(0.3, 0.8) * size, rng.uniform(2, 6)
        corners = cv2.boxPoints(((float(center[0]), float(center[1])), (length, width), angle))
        cv2.fillPoly(canvas, [corners.astype(np.int32)], 1)
    return kind, canvas.astype(bool)


def render_scene(rng: np.random.Generator, image_size: int = 128, num_objects: tuple[int, int] = (1, 4),
                 min_area: int | None = None) -> Scene:
    """Paint ``num_objects`` (inclusive range) textured shapes on a textured background.

    Object hues are at least 0.2 (72 degrees) from the background hue. A shape is
    rejected when it, or an object it occludes, would keep fewer than ``min_area``
    pixels (default: 0.2% of the image, at least 16), so every painted object has a mask.
    """
    if image_size < 32:
        raise ValueError(f"image_size={image_size} must be >= 32")
    if not 1 <= num_objects[0] <= num_objects[1]:
        raise ValueError(f"num_objects={num_objects} must be (low, high) with 1 <= low <= high")
    min_area = max(16, int(0.002 * image_size ** 2)) if min_area is None else min_area
    background_hue = rng.random()
    background = _texture(rng, image_size, background_hue)
    image, labels, shapes = background.copy(), np.zeros((image_size, image_size), np.int32), []
    wanted = int(rng.integers(num_objects[0], num_objects[1] + 1))
    attempts = 0
    while len(shapes) < wanted and (attempts < 4 * wanted or not shapes):
        attempts += 1
        kind, mask = _shape(rng, image_size)
        trial = np.where(mask, len(shapes) + 1, labels)
        areas = np.bincount(trial.ravel(), minlength=len(shapes) + 2)[1:]
        if areas.min() < min_area:
            continue
        hue = (background_hue + rng.uniform(0.2, 0.8)) % 1.0
        image[mask] = _texture(rng, image_size, hue)[mask]
        labels, shapes = trial, shapes + [kind]
    masks = labels[None] == np.arange(1, len(shapes) + 1)[:, None, None]
    return Scene(image, masks, shapes, background)


class SyntheticInstances(InstanceDataset):
    """``size`` procedural scenes of ``image_size`` x ``image_size`` pixels, condition "clear"."""

    def __init__(self, size: int = 1000, image_size: int = 128, num_objects: tuple[int, int] = (1, 4),
                 seed: int = 0) -> None:
        super().__init__(strict=True)
        if size < 1:
            raise ValueError(f"size={size} must be >= 1")
        self.size, self.image_size, self.num_objects, self.seed = size, image_size, num_objects, seed

    def __len__(self) -> int:
        return self.size

    def load(self, index: int) -> InstanceSample:
        scene = render_scene(np.random.default_rng([self.seed, index]), self.image_size, self.num_objects)
        meta = {"dataset": "synthetic", "file": f"synthetic://{self.seed}/{index}", "condition": "clear",
                "image_id": index, "category_ids": [kind + 1 for kind in scene.shapes]}
        return InstanceSample(scene.image, scene.masks, meta)
