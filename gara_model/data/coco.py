"""COCO-style instance JSON (COCO, LVIS, LIS, ACDC): polygons and RLE via pycocotools."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pycocotools.coco import COCO

from .dataset import InstanceDataset
from .errors import BadDataError, report
from .images import read_rgb
from .json_files import json_kind, read_json
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


def _with_ids(entries: list[Any], kind: str, path: Path, strict: bool) -> dict[Any, dict[str, Any]]:
    """``images`` or ``categories`` entries by ``id``; entries without one are reported and left out."""
    by_id = {}
    for position, entry in enumerate(entries):
        if isinstance(entry, dict) and "id" in entry:
            by_id[entry["id"]] = entry
        else:
            report(BadDataError(path, f"{kind} entry {position} has no 'id'"), strict)
    return by_id


def _rle_problem(rle: dict[str, Any], image: dict[str, Any], name: str) -> str | None:
    """Why an RLE cannot be this image's mask: its size is not the image's, or (uncompressed)
    its run lengths do not cover every pixel; None when it can."""
    if "size" not in rle or "counts" not in rle:
        return f"{name}: RLE lacks 'size' or 'counts'"
    height, width = image.get("height"), image.get("width")
    if rle["size"] != [height, width]:
        return f"{name}: RLE size {rle['size']} differs from image {image['id']}'s [{height}, {width}]"
    counts = rle["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts):
            return f"{name}: RLE counts are not all non-negative integers"
        if sum(counts) != height * width:
            return f"{name}: RLE counts sum to {sum(counts)}, not {height} x {width} = {height * width}"
    return None


def _annotation_problem(position: int, ann: Any, images: dict[Any, dict[str, Any]],
                        categories: dict[Any, dict[str, Any]]) -> str | None:
    """Why annotation entry ``position`` cannot be used, or None."""
    if not isinstance(ann, dict):
        return f"annotation entry {position} is {json_kind(ann)}, not an object"
    name = f"annotation {ann['id']}" if "id" in ann else f"annotation entry {position}"
    for key in ("id", "image_id", "category_id", "segmentation"):
        if key not in ann:
            return f"{name} has no '{key}'"
    if ann["image_id"] not in images:
        return f"{name} refers to image id {ann['image_id']} that is not in 'images'"
    if ann["category_id"] not in categories:
        return f"{name}: category_id {ann['category_id']} is not in 'categories'"
    if isinstance(ann["segmentation"], dict):
        return _rle_problem(ann["segmentation"], images[ann["image_id"]], name)
    return None


def load_coco(annotation_file: str | Path, strict: bool = False) -> COCO:
    """Read a COCO-format JSON quietly (pycocotools prints progress).

    A file that is not a COCO instance file raises :class:`BadDataError`. Entries that
    cannot be used are reported (raised when ``strict``) and left out: images or categories
    without ``id``; annotations without ``id``/``image_id``/``category_id``/``segmentation``,
    with an image or category not in the file, or with an RLE that does not fit its image.
    """
    annotation_file = Path(annotation_file)
    data = read_json(annotation_file, "annotation file")
    if not isinstance(data, dict):
        raise BadDataError(annotation_file, f"not a COCO instance file: the top level is {json_kind(data)}, "
                                            "not an object")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise BadDataError(annotation_file, f"not a COCO instance file: no '{key}'")
        if not isinstance(data[key], list):
            raise BadDataError(annotation_file, f"not a COCO instance file: '{key}' is {json_kind(data[key])}, "
                                                "not a list")
    images = _with_ids(data["images"], "image", annotation_file, strict)
    categories = _with_ids(data["categories"], "category", annotation_file, strict)
    annotations = []
    for position, ann in enumerate(data["annotations"]):
        problem = _annotation_problem(position, ann, images, categories)
        if problem:
            report(BadDataError(annotation_file, problem), strict)
        else:
            annotations.append(ann)
    coco = COCO()
    coco.dataset = {**data, "images": list(images.values()), "categories": list(categories.values()),
                    "annotations": annotations}
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

    Images without annotations are left out; unusable entries (see :func:`load_coco`)
    and images whose file is missing are reported.
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
        self.coco = load_coco(self.annotation_file, strict)
        self.condition = condition
        self.items: list[tuple[dict[str, Any], Path, str, list[dict[str, Any]]]] = []
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
                categories.append(int(ann["category_id"]))
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
