"""Robust-Seg reader: RobustSAM's folder layout, conditions named as our corruptions, clear masks shared."""
from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
from PIL import Image

from gara_model.data import ROBUST_SEG, BadDataError, RobustSegInstances, build_dataset
from gara_model.data.build import dataset_from_spec

from .formats import H, W, robust_seg_split

FOLDERS = ("clear", "snow", "fog", "ISO_noise")
#: RobustSAM's folder names, as released.
ROBUSTSAM_FOLDERS = ("snow", "fog", "rain", "gauss_noise", "ISO_noise", "impulse_noise", "resampling_blur",
                     "motion_blur", "zoom_blur", "color_jitter", "compression", "elastic_transform",
                     "frosted_glass_blur", "brightness", "contrast")


@pytest.fixture
def robust_seg_root(tmp_path):
    """A train split of three images in four folders; returns (root, masks in sorted order)."""
    return tmp_path, robust_seg_split(tmp_path / "train", FOLDERS, count=3)


def test_every_image_gets_its_clear_images_masks(robust_seg_root):
    root, masks = robust_seg_root
    dataset = build_dataset("robust_seg", root, "train")
    assert len(dataset) == 12
    conditions = [dataset[i].meta["condition"] for i in range(12)]
    assert conditions == [c for c in ("clear", "snow", "fog", "iso_noise") for _ in range(3)]
    for i in range(12):
        sample = dataset[i]
        pair = i % 3  # img_000<pair>.jpg pairs with mask_000<pair>.npy by sorted order
        folder = FOLDERS[i // 3]
        path = root / "train" / folder / f"img_{pair:04d}.jpg"
        assert sample.meta == {"dataset": "robust_seg", "file": str(path), "condition": conditions[i],
                               "image_id": f"img_{pair:04d}", "category_ids": [1, 1]}
        np.testing.assert_array_equal(sample.image, np.asarray(Image.open(path).convert("RGB")))
        np.testing.assert_array_equal(sample.masks, masks[pair])
    assert not np.array_equal(dataset[0].image, dataset[3].image)  # snow/ holds other pixels than clear/


def test_conditions_option_and_config_spec(robust_seg_root):
    root, masks = robust_seg_root
    spec = {"name": "robust_seg", "root": str(root), "split": "train", "conditions": ["iso_noise", "clear"]}
    dataset = dataset_from_spec(spec)
    assert [dataset[i].meta["condition"] for i in range(len(dataset))] == ["iso_noise"] * 3 + ["clear"] * 3
    assert dataset[1].meta["file"].endswith("ISO_noise/img_0001.jpg")
    np.testing.assert_array_equal(dataset[1].masks, masks[1])
    with pytest.raises(BadDataError, match=r"train/rain: folder missing for condition 'rain'"):
        build_dataset("robust_seg", root, conditions=["rain"])
    with pytest.raises(ValueError, match=r"unknown: \['ISO_noise'\]"):
        build_dataset("robust_seg", root, conditions=["ISO_noise"])


def test_all_fifteen_folders_read_as_our_corruption_names(tmp_path):
    robust_seg_split(tmp_path / "test", ("clear",) + ROBUSTSAM_FOLDERS, count=1)
    dataset = RobustSegInstances(tmp_path / "test")
    assert [dataset[i].meta["condition"] for i in range(16)] == ["clear", *ROBUST_SEG]
    assert [dataset[i].meta["file"].split("/")[-2] for i in range(1, 16)] == list(ROBUSTSAM_FOLDERS)


def test_empty_masks_are_left_out(robust_seg_root, caplog):
    root, masks = robust_seg_root
    path = root / "train" / "masks" / "mask_0000.npy"
    np.save(path, np.stack([np.zeros((H, W), bool), masks[0][1]]))
    with caplog.at_level(logging.WARNING):
        sample = build_dataset("robust_seg", root, conditions=["clear"])[0]
    np.testing.assert_array_equal(sample.masks, masks[0][1:])
    assert sample.meta["category_ids"] == [1]
    assert f"{path}: masks [0] of 2 are empty; left out" in caplog.text
    with pytest.raises(BadDataError, match="masks \\[0\\] of 2 are empty"):
        build_dataset("robust_seg", root, conditions=["clear"], strict=True)[0]
    np.save(path, np.zeros((2, H, W), bool))
    with pytest.raises(BadDataError, match="no non-empty mask among 2"):
        build_dataset("robust_seg", root, conditions=["clear"], strict=True)[0]


def test_unknown_folders_are_named_and_ignored(robust_seg_root, caplog):
    root, _ = robust_seg_root
    (root / "train" / "haze").mkdir()
    with caplog.at_level(logging.WARNING):
        assert len(build_dataset("robust_seg", root)) == 12
    assert "folders ['haze'] are not Robust-Seg conditions; ignored" in caplog.text


def test_not_a_split_and_pickling(robust_seg_root):
    root, _ = robust_seg_root
    with pytest.raises(BadDataError, match="val/clear: folder missing: not a Robust-Seg split"):
        build_dataset("robust_seg", root, "val")
    dataset = build_dataset("robust_seg", root)
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy[7].meta == dataset[7].meta
