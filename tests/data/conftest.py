"""Dataset folders in the real layouts, written to tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest

from .formats import ACDC_FILES, coco_json, write_bdd, write_image


@pytest.fixture
def lis_root(tmp_path: Path) -> Path:
    """LIS layout; one file_name with its JPEGImages/ prefix and one without."""
    root = tmp_path / "LIS"
    for name in ("2.JPG", "4.JPG"):
        write_image(root / "RGB-dark" / "JPEGImages" / name)
    coco_json(root / "annotations" / "lis_coco_JPG_train+1.json", ["JPEGImages/2.JPG", "4.JPG"])
    return root


@pytest.fixture
def acdc_root(tmp_path: Path) -> Path:
    root = tmp_path / "ACDC"
    for name in ACDC_FILES:
        write_image(root / "rgb_anon" / name)
    coco_json(root / "gt_detection" / "instancesonly_train_gt_detection.json", ACDC_FILES)
    return root


@pytest.fixture
def bdd_root(tmp_path: Path) -> Path:
    return write_bdd(tmp_path / "bdd100k")
