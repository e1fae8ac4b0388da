"""One training/evaluation sample: an RGB image, its instance masks and metadata."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Real capture conditions; corrupted samples use the corruption name instead.
CONDITIONS = ("clear", "fog", "night", "rain", "snow", "unknown")

#: Keys every reader puts in ``InstanceSample.meta``.
REQUIRED_META = ("dataset", "file", "condition", "image_id")


@dataclass
class InstanceSample:
    """An image with its instance masks.

    Attributes:
        image: H x W x 3 uint8 RGB.
        masks: N x H x W bool, one mask per instance (N >= 1).
        meta: at least ``dataset``, ``file`` (image path), ``condition``
            (one of ``CONDITIONS`` or a corruption name) and ``image_id``;
            readers also add ``category_ids`` (list of N ints).
    """

    image: np.ndarray
    masks: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.dtype != np.uint8 or self.image.ndim != 3 or self.image.shape[2] != 3:
            raise ValueError(f"image must be H x W x 3 uint8, got {self.image.shape} {self.image.dtype}")
        if self.masks.dtype != np.bool_ or self.masks.ndim != 3:
            raise ValueError(f"masks must be N x H x W bool, got {self.masks.shape} {self.masks.dtype}")
        if self.masks.shape[1:] != self.image.shape[:2]:
            raise ValueError(f"masks {self.masks.shape[1:]} and image {self.image.shape[:2]} differ in size")
        missing = [key for key in REQUIRED_META if key not in self.meta]
        if missing:
            raise ValueError(f"meta lacks {missing}")
