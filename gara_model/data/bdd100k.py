"""BDD100K instance segmentation bitmasks (RGBA PNG) with frame-attribute conditions.

Bitmask layout (BDD100K docs, "Instance Segmentation Format"): R = category id
(0 = background); G = flags ``(truncated << 3) + (occluded << 2) + (crowd << 1) + ignore``;
instance id = ``(B << 8) + A``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .dataset import InstanceDataset
from .errors import BadDataError, report
from .images import read_rgb, read_rgba
from .json_files import json_kind, read_json
from .sample import InstanceSample

IGNORE, CROWD, OCCLUDED, TRUNCATED = 1, 2, 4, 8
_WEATHER = {"rainy": "rain", "snowy": "snow", "foggy": "fog"}


def bdd100k_condition(attributes: dict[str, Any]) -> str:
    """Frame attributes -> condition: night if ``timeofday == "night"``, else
    rain/snow/fog from ``weather``, else clear (clear, overcast, partly cloudy, undefined)."""
    if attributes.get("timeofday") == "night":
        return "night"
    return _WEATHER.get(attributes.get("weather", ""), "clear")


def read_frame_conditions(attributes_file: str | Path, strict: bool = False) -> dict[str, str]:
    """Scalabel/BDD100K label JSON (a list of frames, or ``{"frames": [...]}``) -> {image name: condition}.

    A file of another shape raises :class:`BadDataError`; a frame without a string ``name``
    or with non-object ``attributes`` is reported (raised when ``strict``) and left out.
    """
    data = read_json(attributes_file, "frame attributes")
    frames = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(frames, list):
        got = "an object without 'frames'" if isinstance(data, dict) else json_kind(data)
        raise BadDataError(attributes_file, f"expected a list of frames or {{'frames': [...]}}, got {got}")
    conditions = {}
    for position, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("name"), str):
            report(BadDataError(attributes_file, f"frame {position} has no 'name'"), strict)
            continue
        attributes = frame.get("attributes") or {}
        if not isinstance(attributes, dict):
            report(BadDataError(attributes_file, f"frame {frame['name']}: 'attributes' is {json_kind(attributes)}, "
                                                 "not an object"), strict)
            continue
        conditions[frame["name"]] = bdd100k_condition(attributes)
    return conditions


def decode_bitmask(bitmask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """H x W x 4 uint8 bitmask -> (masks N x H x W bool, category ids N, flags N), by instance id."""
    if bitmask.ndim != 3 or bitmask.shape[2] != 4:
        raise ValueError(f"bitmask must be H x W x 4, got {bitmask.shape}")
    category = bitmask[..., 0]
    ids = (bitmask[..., 2].astype(np.int32) << 8) + bitmask[..., 3]
    foreground = category > 0
    instance_ids = np.unique(ids[foreground])
    masks = (ids[None] == instance_ids[:, None, None]) & foreground[None]
    categories = np.array([category[m].max() for m in masks], dtype=np.int64)
    flags = np.array([np.bitwise_or.reduce(bitmask[..., 1][m]) for m in masks], dtype=np.uint8)
    return masks, categories, flags


class BDD100KInstances(InstanceDataset):
    """BDD100K ``ins_seg`` bitmasks; crowd and ignore instances are excluded.

    Args:
        image_dir: e.g. ``bdd100k/images/10k/train`` (``<name>.jpg``).
        bitmask_dir: e.g. ``bdd100k/labels/ins_seg/bitmasks/train`` (``<name>.png``).
        attributes_file: label JSON with frame ``attributes`` (weather,
            timeofday); frames absent from it, or no file, give ``"unknown"``.
        strict: raise :class:`BadDataError` instead of warning and skipping.
    """

    def __init__(self, image_dir: str | Path, bitmask_dir: str | Path,
                 attributes_file: str | Path | None = None, *, strict: bool = False) -> None:
        super().__init__(strict)
        self.conditions = read_frame_conditions(attributes_file, strict) if attributes_file else {}
        self.items: list[tuple[Path, Path]] = []
        for bitmask in sorted(Path(bitmask_dir).glob("*.png")):
            image = Path(image_dir) / f"{bitmask.stem}.jpg"
            if image.is_file():
                self.items.append((image, bitmask))
            else:
                report(BadDataError(bitmask, f"bitmask for a missing image {image}"), strict)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> InstanceSample:
        image_path, bitmask_path = self.items[index]
        image, bitmask = read_rgb(image_path), read_rgba(bitmask_path)
        if bitmask.shape[:2] != image.shape[:2]:
            raise BadDataError(bitmask_path, f"bitmask {bitmask.shape[:2]} != image {image.shape[:2]}")
        masks, categories, flags = decode_bitmask(bitmask)
        keep = (flags & (CROWD | IGNORE)) == 0
        if not keep.any():
            raise BadDataError(bitmask_path, "no instance left after removing crowd/ignore")
        meta = {"dataset": "bdd100k", "file": str(image_path),
                "condition": self.conditions.get(image_path.name, "unknown"),
                "image_id": image_path.stem, "category_ids": categories[keep].tolist()}
        return InstanceSample(image, masks[keep], meta)
