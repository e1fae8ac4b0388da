"""Dataset folders in the real layouts, written to tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from .formats import ACDC_FILES, BDD_INSTANCES, bitmask, coco_json, write_image


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
    root = tmp_path / "bdd100k"
    names = ["night-frame", "rainy-frame", "no-attributes"]
    for i, name in enumerate(names):
        write_image(root / "images" / "10k" / "train" / f"{name}.jpg", seed=i)
        path = root / "labels" / "ins_seg" / "bitmasks" / "train" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(bitmask(BDD_INSTANCES)).save(path)
    frames = [{"name": "night-frame.jpg", "attributes": {"weather": "clear", "timeofday": "night", "scene": "highway"},
               "labels": []},
              {"name": "rainy-frame.jpg", "attributes": {"weather": "rainy", "timeofday": "daytime",
                                                         "scene": "city street"}, "labels": []}]
    polygons = root / "labels" / "ins_seg" / "polygons" / "ins_seg_train.json"
    polygons.parent.mkdir(parents=True)
    polygons.write_text(json.dumps(frames))
    return root
