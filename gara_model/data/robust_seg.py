"""Robust-Seg (RobustSAM's dataset): clear images, 15 degraded copies of each, .npy instance masks.

One split folder (``<root>/{train,val,test}``) holds::

    clear/*.jpg          the clear images
    masks/*.npy          one N x H x W bool array per clear image, paired with clear/ by sorted order
    <corruption>/*.jpg   one folder per degradation, the same file names as clear/

Degraded images share their clear image's masks. Conditions are our corruption names
(``ROBUST_SEG``; the folder ``ISO_noise`` is ``iso_noise``) or ``clear``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .corruptions import ROBUST_SEG
from .dataset import InstanceDataset
from .errors import BadDataError, logger, report
from .images import IMAGE_SUFFIXES, read_mask_stack, read_rgb
from .sample import InstanceSample

#: Every condition a Robust-Seg split can hold, in RobustSAM's order after ``clear``.
ROBUST_SEG_CONDITIONS = ("clear",) + ROBUST_SEG
_FOLDERS = {"iso_noise": "ISO_noise"}  # RobustSAM's folder names that differ from our corruption names


def condition_folder(condition: str) -> str:
    """Condition -> its folder name in a Robust-Seg split (``iso_noise`` -> ``ISO_noise``)."""
    return _FOLDERS.get(condition, condition)


def _image_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


class RobustSegInstances(InstanceDataset):
    """Every image of the chosen conditions with its clear image's masks.

    Args:
        split_dir: e.g. ``robust_seg/train`` (holds ``clear/``, ``masks/`` and the corruption folders).
        conditions: names from ``ROBUST_SEG_CONDITIONS``; None takes every folder present.
        strict: raise :class:`BadDataError` instead of warning and skipping.

    A missing ``clear/`` or ``masks/``, different counts in the two, or a requested condition
    without its folder raise (nothing can be paired). A degraded image missing from its
    folder, or one that is not in ``clear/``, is reported and left out.
    """

    def __init__(self, split_dir: str | Path, conditions: Sequence[str] | None = None, *,
                 strict: bool = False) -> None:
        super().__init__(strict)
        self.split_dir = Path(split_dir)
        if conditions is not None:
            unknown = [c for c in conditions if c not in ROBUST_SEG_CONDITIONS]
            if not conditions or unknown:
                raise ValueError(f"conditions={list(conditions)} must be a non-empty subset of "
                                 f"{ROBUST_SEG_CONDITIONS}; unknown: {unknown}")
        for folder in ("clear", "masks"):
            if not (self.split_dir / folder).is_dir():
                raise BadDataError(self.split_dir / folder, "folder missing: not a Robust-Seg split")
        present = [c for c in ROBUST_SEG_CONDITIONS if (self.split_dir / condition_folder(c)).is_dir()]
        self._warn_unknown_folders()
        if conditions is None:
            conditions = present
        for condition in conditions:
            if condition not in present:
                raise BadDataError(self.split_dir / condition_folder(condition),
                                   f"folder missing for condition {condition!r}")
        self.names = _image_names(self.split_dir / "clear")
        self.mask_files = sorted(p.name for p in (self.split_dir / "masks").glob("*.npy"))
        if len(self.mask_files) != len(self.names):
            raise BadDataError(self.split_dir / "masks",
                               f"{len(self.mask_files)} mask files for {len(self.names)} images in clear/")
        self.conditions = tuple(conditions)
        self.items: list[tuple[str, int]] = []  # (condition, index into names and mask_files)
        for condition in self.conditions:
            self._index(condition)

    def _warn_unknown_folders(self) -> None:
        known = {condition_folder(c) for c in ROBUST_SEG_CONDITIONS} | {"masks"}
        unknown = sorted(p.name for p in self.split_dir.iterdir() if p.is_dir() and p.name not in known)
        if unknown:
            logger.warning("%s: folders %s are not Robust-Seg conditions; ignored", self.split_dir, unknown)

    def _index(self, condition: str) -> None:
        folder = self.split_dir / condition_folder(condition)
        present = set(_image_names(folder))
        for pair, name in enumerate(self.names):
            if name in present:
                self.items.append((condition, pair))
            else:
                report(BadDataError(folder / name, f"missing; clear/ has {name}"), self.strict)
        for name in sorted(present - set(self.names)):
            report(BadDataError(folder / name, "not in clear/, so it has no masks"), self.strict)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> InstanceSample:
        condition, pair = self.items[index]
        image_path = self.split_dir / condition_folder(condition) / self.names[pair]
        mask_path = self.split_dir / "masks" / self.mask_files[pair]
        image, masks = read_rgb(image_path), read_mask_stack(mask_path)
        if masks.shape[1:] != image.shape[:2]:
            raise BadDataError(mask_path, f"masks {masks.shape[1]} x {masks.shape[2]} != image "
                                          f"{image.shape[0]} x {image.shape[1]}")
        empty = np.flatnonzero(~masks.reshape(len(masks), -1).any(axis=1))
        if len(empty) == len(masks):
            raise BadDataError(mask_path, f"no non-empty mask among {len(masks)}")
        if len(empty):
            report(BadDataError(mask_path, f"masks {empty.tolist()} of {len(masks)} are empty; left out"), self.strict)
            masks = np.delete(masks, empty, axis=0)
        meta = {"dataset": "robust_seg", "file": str(image_path), "condition": condition,
                "image_id": Path(self.names[pair]).stem, "category_ids": [1] * len(masks)}
        return InstanceSample(image, masks, meta)
