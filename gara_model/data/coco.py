"""COCO-style instance JSON (COCO, LVIS, LIS, ACDC): polygons and RLE via pycocotools."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pycocotools.coco import COCO

from .dataset import InstanceDataset
from .errors import BadDataError, report
from .images import read_rgb
from .sample import InstanceSample


def _file_name(image_info: dict[str, Any]) -> str:
    """COCO/LIS/ACDC give ``file_name``; LVIS gives only ``coco_url`` (…/train2017/x.jpg)."""
    if "file_name" in image_info:
        return image_info["file_name"]
    if "coco_url" in image_info:
        return "/".join(image_info["coco_url"].split("/")[-2:])
    raise KeyError("file_name")


def _resolve(image_root: Path, file_name: str) -> Path:
    """``image_root / file_name``, or ``image_root / basename`` when only that exists."""
    path = image_root / file_name
    if not path.is_file() and (image_root / Path(file_name).name).is_file():
        return image_root / Path(file_name).name
    return path


def load_coco(annotation_file: str | Path) -> COCO:
    """Read a COCO-format JSON quietly (pycocotools prints progress)."""
    try:
        with open(annotation_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise BadDataError(annotation_file, f"cannot read annotation file ({error})") from error
    for key in ("images", "annotations"):
        if key not in data:
            raise BadDataError(annotation_file, f"not a COCO instance file: no '{key}'")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


class CocoInstances(InstanceDataset):
    """Instances from a COCO-format JSON.

    Args:
        annotation_file: the JSON (``images``, ``annotations``; polygons,
            compressed or uncompressed RLE).
        image_root: folder that ``file_name`` is relative to.
        dataset: name put in ``meta["dataset"]``.
        condition: a fixed condition, or a function ``file_name -> condition``
            (raising ValueError for a file it cannot place).
        include_crowd: keep ``iscrowd`` annotations (off: COCO crowd regions are
            not single instances).
        strict: raise :class:`BadDataError` instead of warning and skipping.

    Images without annotations are left out; annotations whose ``image_id`` is
    not in ``images``, and images whose file is missing, are reported.
    """

    def __init__(
        self,
        annotation_file: str | Path,
        image_root: str | Path,
        *,
        dataset: str = "coco",
        condition: str | Callable[[str], str] = "clear",
        include_crowd: bool = False,
        strict: bool = False,
    ) -> None:
        super().__init__(strict)
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        self.dataset = dataset
        self.coco = load_coco(self.annotation_file)
        self.condition = condition
        self.items: list[tuple[dict[str, Any], Path, str, list[dict[str, Any]]]] = []
        for ann in self.coco.dataset["annotations"]:
            if ann.get("image_id") not in self.coco.imgs:
                report(BadDataError(self.annotation_file,
                                    f"annotation {ann.get('id')} refers to image id "
                                    f"{ann.get('image_id')} that is not in 'images'"), strict)
        for image_id in sorted(self.coco.imgs):
            info = self.coco.imgs[image_id]
            anns = [a for a in self.coco.imgToAnns.get(image_id, [])
                    if include_crowd or not a.get("iscrowd", 0)]
            if anns:
                self._index(info, anns)

    def _index(self, info: dict[str, Any], anns: list[dict[str, Any]]) -> None:
        try:
            file_name = _file_name(info)
            path = _resolve(self.image_root, file_name)
            if not path.is_file():
                raise BadDataError(path, f"image file missing (image id {info['id']})")
            condition = self.condition(file_name) if callable(self.condition) else self.condition
        except KeyError as error:
            report(BadDataError(self.annotation_file, f"image {info.get('id')} lacks {error}"), self.strict)
        except ValueError as error:
            report(BadDataError(self.annotation_file, str(error)), self.strict)
        except BadDataError as error:
            report(error, self.strict)
        else:
            self.items.append((info, path, condition, anns))

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> InstanceSample:
        info, path, condition, anns = self.items[index]
        image = read_rgb(path)
        expected = (info.get("height"), info.get("width"))
        if image.shape[:2] != expected:
            raise BadDataError(path, f"image is {image.shape[:2]}, annotation says {expected}")
        masks, categories = [], []
        for ann in anns:
            mask = self._decode(ann, path)
            if mask is not None:
                masks.append(mask)
                categories.append(int(ann.get("category_id", 0)))
        if not masks:
            raise BadDataError(path, "no non-empty instance mask")
        meta = {"dataset": self.dataset, "file": str(path), "condition": condition,
                "image_id": info["id"], "category_ids": categories}
        return InstanceSample(image, np.stack(masks), meta)

    def _decode(self, ann: dict[str, Any], path: Path) -> np.ndarray | None:
        """One annotation -> H x W bool, or None (reported) when empty or undecodable."""
        try:
            mask = self.coco.annToMask(ann).astype(bool)
        except Exception as error:  # pycocotools raises bare Exception for bad input types
            report(BadDataError(path, f"annotation {ann.get('id')} does not decode ({error})"), self.strict)
            return None
        if not mask.any():
            report(BadDataError(path, f"annotation {ann.get('id')} has an empty mask"), self.strict)
            return None
        return mask
