"""Reader table: every kind of bad data gives one line naming the file and what is wrong.

Each case writes a small dataset in its real layout holding one bad item (or one bad whole
file) and good ones. An item-level problem is logged once and skipped (the next good sample is
served), or raised with ``strict=True``; a whole-file problem leaves nothing to read and raises
either way.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from gara_model.data import BadDataError, CocoInstances, InstanceDataset, build_dataset

from .formats import (BDD_FRAMES, H, W, binary_png, compressed_rle, rle_mask, robust_seg_split, uncompressed_rle,
                      write_bdd, write_image)

Build = Callable[[bool], InstanceDataset]
_DELETE = object()


def _coco(tmp_path: Path, **bad: Any) -> tuple[Build, Path]:
    """Images a.jpg (id 1) and b.jpg (id 2), one annotation each; ``bad`` patches annotation 1."""
    for name in ("a.jpg", "b.jpg"):
        write_image(tmp_path / "img" / name)
    good = {"iscrowd": 0, "category_id": 1, "segmentation": compressed_rle(rle_mask())}
    first = {**good, "id": 1, "image_id": 1, **bad}
    annotations = [{k: v for k, v in first.items() if v is not _DELETE}, {**good, "id": 2, "image_id": 2}]
    data = {"images": [{"id": i, "file_name": name, "height": H, "width": W} for i, name in ((1, "a.jpg"), (2, "b.jpg"))],
            "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return lambda strict: CocoInstances(path, tmp_path / "img", strict=strict), path


def _coco_top_level_number(tmp_path: Path) -> tuple[Build, Path]:
    path = tmp_path / "ann.json"
    path.write_text("42")
    return lambda strict: CocoInstances(path, tmp_path, strict=strict), path


def _bdd(frames: object) -> Callable[[Path], tuple[Build, Path]]:
    def write(tmp_path: Path) -> tuple[Build, Path]:
        root = write_bdd(tmp_path / "bdd100k", frames)
        return (lambda strict: build_dataset("bdd100k", root, strict=strict),
                root / "labels" / "ins_seg" / "polygons" / "ins_seg_train.json")
    return write


def _mask_folder(write_bad_mask: Callable[[Path], None]) -> Callable[[Path], tuple[Build, Path]]:
    """MSRA-10K layout a.jpg + a.png (bad), b.jpg + b.png (good)."""
    def write(tmp_path: Path) -> tuple[Build, Path]:
        good = np.zeros((H, W), bool)
        good[5:30, 10:40] = True
        for name in ("a", "b"):
            write_image(tmp_path / f"{name}.jpg")
            binary_png(tmp_path / f"{name}.png", good)
        write_bad_mask(tmp_path / "a.png")
        return lambda strict: build_dataset("msra10k", tmp_path, strict=strict), tmp_path / "a.png"
    return write


def _colour_mask(path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[5:30, 10:40] = (255, 0, 0)  # red on black: grey level 76, which read as "empty mask" before
    Image.fromarray(rgb).save(path)


def _transparent_mask(path: Path) -> None:
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[..., 3] = 0
    rgba[5:30, 10:40, 3] = 255  # a cut-out: white everywhere, the object only in alpha
    Image.fromarray(rgba).save(path)


def _robust_seg(damage: Callable[[Path], Path], conditions: tuple[str, ...] = ("clear",)
                ) -> Callable[[Path], tuple[Build, Path]]:
    """Robust-Seg split with clear/ and fog/; ``damage(split_dir)`` breaks one file and returns it."""
    def write(tmp_path: Path) -> tuple[Build, Path]:
        robust_seg_split(tmp_path / "train", ("clear", "fog"))
        bad = damage(tmp_path / "train")
        return lambda strict: build_dataset("robust_seg", tmp_path, conditions=list(conditions), strict=strict), bad
    return write


def _save_masks(masks: np.ndarray, **kwargs: Any) -> Callable[[Path], Path]:
    def damage(split_dir: Path) -> Path:
        path = split_dir / "masks" / "mask_0000.npy"
        np.save(path, masks, **kwargs)
        return path
    return damage


def _extra_mask(split_dir: Path) -> Path:
    np.save(split_dir / "masks" / "mask_0002.npy", np.ones((1, H, W), bool))
    return split_dir / "masks"


def _missing_fog_image(split_dir: Path) -> Path:
    (split_dir / "fog" / "img_0000.jpg").unlink()
    return split_dir / "fog" / "img_0000.jpg"


def _extra_fog_image(split_dir: Path) -> Path:
    path = split_dir / "fog" / "img_0009.jpg"
    write_image(path)
    return path


_SHORT_COUNTS = uncompressed_rle(rle_mask())["counts"][:-1]  # last background run dropped
_TWO_MASKS = np.ones((2, H, W), bool)


@dataclass
class Case:
    write: Callable[[Path], tuple[Build, Path]]  # -> (build(strict), the file the message must name)
    reason: str  # what is wrong, as the message says it
    served: dict[str, Any] | None  # meta of dataset[0] when not strict; None: whole file bad, raises always


CASES = {
    "coco-rle-size-differs": Case(
        lambda p: _coco(p, segmentation=compressed_rle(np.ones((H + 2, W), bool))),
        f"annotation 1: RLE size [{H + 2}, {W}] differs from image 1's [{H}, {W}]", {"image_id": 2}),
    "coco-rle-counts-short": Case(
        lambda p: _coco(p, segmentation={"size": [H, W], "counts": _SHORT_COUNTS}),
        f"annotation 1: RLE counts sum to {sum(_SHORT_COUNTS)}, not {H} x {W} = {H * W}", {"image_id": 2}),
    "coco-no-category-id": Case(lambda p: _coco(p, category_id=_DELETE), "annotation 1 has no 'category_id'",
                                {"image_id": 2}),
    "coco-unknown-category": Case(lambda p: _coco(p, category_id=77),
                                  "annotation 1: category_id 77 is not in 'categories'", {"image_id": 2}),
    "coco-top-level-number": Case(_coco_top_level_number, "not a COCO instance file: the top level is a number, not an object", None),
    "bdd-frame-without-name": Case(_bdd([{"attributes": {"weather": "foggy"}}] + BDD_FRAMES),
                                   "frame 0 has no 'name'", {"image_id": "night-frame", "condition": "night"}),
    "bdd-dict-without-frames": Case(_bdd({"labels": []}),
                                    "expected a list of frames or {'frames': [...]}, got an object without 'frames'",
                                    None),
    "bdd-bare-number": Case(_bdd(7), "expected a list of frames or {'frames': [...]}, got a number", None),
    "mask-colour": Case(_mask_folder(_colour_mask),
                        "colour mask (1 non-grey colour, e.g. RGB (255, 0, 0)): expected a greyscale or palette mask", {"image_id": "b"}),
    "mask-transparent": Case(_mask_folder(_transparent_mask),
                             "mask has transparency (alpha below 255): expected an opaque greyscale or palette mask",
                             {"image_id": "b"}),
    "robust-seg-count-mismatch": Case(_robust_seg(_extra_mask), "3 mask files for 2 images in clear/", None),
    "robust-seg-missing-degraded-image": Case(_robust_seg(_missing_fog_image, ("fog",)),
                                              "missing; clear/ has img_0000.jpg",
                                              {"image_id": "img_0001", "condition": "fog"}),
    "robust-seg-extra-degraded-image": Case(_robust_seg(_extra_fog_image, ("fog",)), "not in clear/, so it has no masks",
                                            {"image_id": "img_0000", "condition": "fog"}),
    "robust-seg-masks-not-bool": Case(_robust_seg(_save_masks(_TWO_MASKS.astype(np.uint8))),
                                      f"expected an N x H x W bool array, got shape (2, {H}, {W}) uint8",
                                      {"image_id": "img_0001"}),
    "robust-seg-masks-2d": Case(_robust_seg(_save_masks(_TWO_MASKS[0])),
                                f"expected an N x H x W bool array, got shape ({H}, {W}) bool",
                                {"image_id": "img_0001"}),
    "robust-seg-masks-size-differs": Case(_robust_seg(_save_masks(np.ones((2, H + 1, W), bool))),
                                          f"masks {H + 1} x {W} != image {H} x {W}", {"image_id": "img_0001"}),
    "robust-seg-pickled-masks": Case(_robust_seg(_save_masks(np.array([_TWO_MASKS, None], dtype=object),
                                                             allow_pickle=True)),
                                     "object array (pickled .npy), not loaded: expected an N x H x W bool array", {"image_id": "img_0001"}),
}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gara_model.data" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_data_is_one_line_naming_the_file(tmp_path, caplog, case):
    build, bad_file = case.write(tmp_path)
    expected = f"{bad_file}: {case.reason}"
    with pytest.raises(BadDataError) as raised:
        build(True)[0]
    assert str(raised.value) == expected and raised.value.path == str(bad_file)
    if case.served is None:
        with pytest.raises(BadDataError, match="^" + str(bad_file)):
            build(False)
        return
    with caplog.at_level(logging.WARNING, logger="gara_model.data"):
        sample = build(False)[0]
    assert _warnings(caplog) == [f"skipped bad data: {expected}"]
    assert "\n" not in expected
    assert {key: sample.meta[key] for key in case.served} == case.served
