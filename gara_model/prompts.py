"""Prompts for one object (points, labels, box, an earlier mask) in the original image's pixels, and their checking.

The predictor, the evaluation and the ROS node share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjectPrompt:
    """Prompts for one object, in pixel coordinates of the original image.

    points: N x 2 (X, Y), labels: N (1 foreground, 0 background), box: 4 (XYXY) or None.
    mask_input: h x w low-resolution mask logits or None: SAM's mask prompt, in the frame of
    `Prediction.low_res_logits` (one of an earlier prediction's masks on an image of the same size, e.g. to follow
    an object from frame to frame).
    """

    object_id: str = ""
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None


def validate_prompt(prompt: ObjectPrompt, index: int, image_size: tuple[int, int]) -> ObjectPrompt:
    """Checked copy of a prompt (box clipped to the image); ValueError naming the object for bad input.

    index: the object's place in its request (names it when it has no object_id); image_size: (H, W) pixels.
    """
    name = f"object {prompt.object_id!r}" if prompt.object_id else f"object #{index}"
    height, width = image_size
    points = np.asarray(prompt.points, dtype=np.float32).reshape(-1, 2) if np.size(prompt.points) else np.zeros((0, 2), np.float32)
    labels = np.asarray(prompt.labels).reshape(-1)
    if len(labels) != len(points):
        raise ValueError(f"{name}: {len(points)} points but {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name}: point labels must be 1 (foreground) or 0 (background), got {sorted(set(labels.tolist()))}")
    if not np.isfinite(points).all():
        raise ValueError(f"{name}: points contain NaN or infinity")
    outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
    if outside.any():
        raise ValueError(f"{name}: point {points[outside][0].tolist()} is outside the {width} x {height} image")
    box = None
    if prompt.box is not None:
        box = np.asarray(prompt.box, dtype=np.float32).reshape(-1)
        if box.shape != (4,) or not np.isfinite(box).all():
            raise ValueError(f"{name}: box must be 4 finite numbers x1, y1, x2, y2, got {prompt.box}")
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{name}: box {box.tolist()} has x2 <= x1 or y2 <= y1")
        box = np.clip(box, 0, [width, height, width, height]).astype(np.float32)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"{name}: box {prompt.box} lies outside the {width} x {height} image")
    mask_input = None
    if prompt.mask_input is not None:
        mask_input = np.asarray(prompt.mask_input, dtype=np.float32)
        if mask_input.ndim != 2 or not np.isfinite(mask_input).all():
            raise ValueError(f"{name}: mask_input must be an h x w array of finite logits, got shape "
                             f"{mask_input.shape}")
    if len(points) == 0 and box is None and mask_input is None:
        raise ValueError(f"{name}: empty prompt, give at least one point or a box")
    return ObjectPrompt(object_id=prompt.object_id, points=points, labels=labels.astype(np.int64), box=box,
                        mask_input=mask_input)
