"""Moving synthetic sequences: the objects of a procedural scene translating and scaling, with exact masks.

For measuring how well an object is followed across frames (bench/tracking.py, tests/ros/test_tracking.py).
Each object of ``render_scene`` becomes a sprite that moves at a constant speed, bouncing off the image borders,
while its scale oscillates; sprites are painted in order over the scene's background (later ones on top), so the
true masks are occlusion-resolved as in ``render_scene``. The condition can change along the sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from .corruptions import corrupt
from .synthetic import render_scene

CLEAR = "clear"  # a condition that leaves the frame as rendered


@dataclass
class MovingFrame:
    """One frame of a moving sequence.

    Attributes:
        image: H x W x 3 uint8 RGB, after the frame's condition.
        masks: N x H x W bool true masks, disjoint; an object fully hidden or out of view has an empty mask.
        condition: CLEAR or a ``corrupt`` name.
    """

    image: np.ndarray
    masks: np.ndarray
    condition: str


def _bounce(start: float, velocity: float, t: int, low: float, high: float) -> float:
    """Position after t steps of `velocity` from `start`, reflected at `low` and `high` (a triangle wave)."""
    if high <= low:
        return (low + high) / 2
    span = high - low
    phase = (start - low + velocity * t) % (2 * span)
    return low + (phase if phase <= span else 2 * span - phase)


def moving_sequence(seed: int, frames: int = 100, image_size: int = 128, speed: float = 2.0,
                    max_scale: float = 1.25, scale_period: int = 40, num_objects: tuple[int, int] = (1, 3),
                    conditions: tuple[str, ...] = (CLEAR,)) -> Iterator[MovingFrame]:
    """Yield `frames` frames of one scene whose objects move `speed` pixels per frame (in a random direction,
    bouncing off the borders) and scale between 1 / `max_scale` and `max_scale` of their size over `scale_period`
    frames, around their centre. The sequence is split into len(`conditions`) equal parts, each under one
    condition (CLEAR or a ``corrupt`` name; corruptions seeded per frame).

    Frame 0 shows every object at scale 1 where ``render_scene`` painted it.
    """
    if frames < 1 or speed < 0 or max_scale < 1 or scale_period < 1:
        raise ValueError(f"frames={frames} must be >= 1, speed={speed} >= 0, max_scale={max_scale} >= 1 and "
                         f"scale_period={scale_period} >= 1")
    rng = np.random.default_rng(seed)
    scene = render_scene(rng, image_size, num_objects)
    count = len(scene.masks)
    angles = rng.uniform(0, 2 * np.pi, count)
    velocities = speed * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # N x 2 (vx, vy)
    phases = rng.uniform(0, 2 * np.pi, count)
    sprites = []  # per object: its pixels, mask, centre (x, y) and half extent (x, y) at scale 1
    for mask in scene.masks:
        ys, xs = np.nonzero(mask)
        centre = np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2])
        half = np.array([(xs.max() - xs.min() + 1) / 2, (ys.max() - ys.min() + 1) / 2])
        sprites.append((scene.image * mask[..., None], mask.astype(np.uint8), centre, half))
    for t in range(frames):
        image, labels = scene.background.copy(), np.zeros((image_size, image_size), np.int32)
        for index, (pixels, mask, centre, half) in enumerate(sprites, start=1):
            # scale(0) = 1: the oscillation starts from the rendered size
            scale = max_scale ** (np.sin(2 * np.pi * t / scale_period + phases[index - 1])
                                  - np.sin(phases[index - 1]))
            scale = float(np.clip(scale, 1 / max_scale, max_scale))
            reach = half * max_scale  # the centre stays where the largest sprite would fit
            position = [_bounce(centre[a], velocities[index - 1, a], t, reach[a], image_size - reach[a])
                        for a in (0, 1)]
            warp = np.array([[scale, 0, position[0] - scale * centre[0]],
                             [0, scale, position[1] - scale * centre[1]]], np.float32)
            size = (image_size, image_size)
            moved = cv2.warpAffine(mask, warp, size, flags=cv2.INTER_NEAREST).astype(bool)
            moved_pixels = cv2.warpAffine(pixels, warp, size, flags=cv2.INTER_NEAREST)
            image[moved], labels[moved] = moved_pixels[moved], index
        condition = conditions[t * len(conditions) // frames]
        if condition != CLEAR:
            image = corrupt(image, condition, seed=seed * 100_003 + t)
        yield MovingFrame(image, labels[None] == np.arange(1, count + 1)[:, None, None], condition)
