"""Point and box prompts from instance masks, in segment_anything's conventions.

Points are (x, y) pixel coordinates, ``N x K x 2`` float32 with ``N x K`` int labels
(1 = foreground); boxes are XYXY pixels, ``N x 4`` float32, with x1/y1 the last
mask column/row (inclusive, as ``segment_anything.utils.amg.batched_mask_to_box``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Name of the deterministic evaluation protocol; bump when ``eval_prompts`` changes.
EVAL_PROTOCOL = "gara-eval-v1"
PROMPT_MODES = ("points", "box", "both", "mix")


@dataclass
class Prompts:
    """Prompts for N instances; absent kinds are None.

    Attributes:
        points: N x K x 2 float32 (x, y) pixels.
        labels: N x K int64, 1 = foreground.
        boxes: N x 4 float32 XYXY pixels.
    """

    points: np.ndarray | None
    labels: np.ndarray | None
    boxes: np.ndarray | None


def _check_masks(masks: np.ndarray) -> None:
    if masks.ndim != 3 or masks.dtype != np.bool_:
        raise ValueError(f"masks must be N x H x W bool, got {masks.shape} {masks.dtype}")
    if not masks.reshape(len(masks), -1).any(axis=1).all():
        raise ValueError("masks: every mask needs at least one pixel")


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """N x H x W bool -> N x 4 float32 tight XYXY boxes (inclusive max pixel)."""
    _check_masks(masks)
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    y0, y1 = rows.argmax(axis=1), rows.shape[1] - 1 - rows[:, ::-1].argmax(axis=1)
    x0, x1 = cols.argmax(axis=1), cols.shape[1] - 1 - cols[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


def jitter_boxes(boxes: np.ndarray, image_size: tuple[int, int], max_fraction: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Move each box side by at most ``max_fraction`` of the box width (x) or height (y),
    clipped to the ``(H, W)`` image; N x 4 -> N x 4 float32."""
    if max_fraction < 0:
        raise ValueError(f"max_fraction={max_fraction} must be >= 0")
    extent = np.concatenate([boxes[:, 2:3] - boxes[:, 0:1] + 1, boxes[:, 3:4] - boxes[:, 1:2] + 1], axis=1)
    scale = np.tile(extent, 2) * max_fraction
    jittered = boxes + rng.uniform(-1, 1, size=boxes.shape) * scale
    height, width = image_size
    jittered[:, 0::2] = np.clip(jittered[:, 0::2], 0, width - 1)
    jittered[:, 1::2] = np.clip(jittered[:, 1::2], 0, height - 1)
    return jittered.astype(np.float32)


def random_points(masks: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` foreground pixels per mask, uniformly (without replacement when the mask has k
    pixels or more); N x H x W -> N x k x 2 float32 (x, y)."""
    _check_masks(masks)
    if k < 1:
        raise ValueError(f"k={k} must be >= 1")
    points = np.empty((len(masks), k, 2), dtype=np.float32)
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        pick = rng.choice(len(xs), size=k, replace=len(xs) < k)
        points[i] = np.stack([xs[pick], ys[pick]], axis=1)
    return points


def interior_points(masks: np.ndarray) -> np.ndarray:
    """The most interior pixel of each mask: the maximum of the L2 distance to the nearest
    background pixel (outside the image counts as background); ties go to the first pixel in
    row-major order (smallest y, then smallest x). N x H x W -> N x 2 float32 (x, y)."""
    _check_masks(masks)
    points = np.empty((len(masks), 2), dtype=np.float32)
    for i, mask in enumerate(masks):
        padded = np.pad(mask, 1).astype(np.uint8)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        y, x = np.unravel_index(np.argmax(distance), distance.shape)
        points[i] = (x, y)
    return points


def training_prompts(masks: np.ndarray, rng: np.random.Generator, mode: str = "mix", k: int = 3,
                     box_jitter: float = 0.1) -> Prompts:
    """Training prompts for N x H x W masks.

    ``mode``: ``"points"`` (k random foreground points, RobustSAM uses k=3), ``"box"``
    (tight box, each side jittered by up to ``box_jitter`` of the box size), ``"both"``,
    or ``"mix"`` (one of the three, chosen at random per call).
    """
    if mode not in PROMPT_MODES:
        raise ValueError(f"mode={mode!r} is not one of {PROMPT_MODES}")
    if mode == "mix":
        mode = PROMPT_MODES[rng.integers(3)]
    points = labels = boxes = None
    if mode in ("points", "both"):
        points = random_points(masks, k, rng)
        labels = np.ones(points.shape[:2], dtype=np.int64)
    if mode in ("box", "both"):
        boxes = jitter_boxes(mask_boxes(masks), masks.shape[1:], box_jitter, rng)
    return Prompts(points, labels, boxes)


def eval_prompts(masks: np.ndarray, num_random_points: int = 0, seed: int = 0) -> Prompts:
    """``EVAL_PROTOCOL`` prompts: per mask the interior point first, then
    ``num_random_points`` foreground points drawn with ``seed``; box = tight box."""
    if num_random_points < 0:
        raise ValueError(f"num_random_points={num_random_points} must be >= 0")
    points = interior_points(masks)[:, None]
    if num_random_points:
        extra = random_points(masks, num_random_points, np.random.default_rng(seed))
        points = np.concatenate([points, extra], axis=1)
    return Prompts(points, np.ones(points.shape[:2], dtype=np.int64), mask_boxes(masks))
