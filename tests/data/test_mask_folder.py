"""Image + binary mask folders: MSRA-10K (side by side) and ThinObject-5K (images/ + masks/)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from gara_model.data import BadDataError, build_dataset

from .formats import H, W, binary_png, truncate, write_image


def _mask(offset: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[3 + offset:20 + offset, 7:33] = True
    mask[30, 2] = True
    return mask


@pytest.mark.parametrize("mode", ["L", "L01", "P"])
def test_msra10k_pairs_and_mask_encodings(tmp_path, mode):
    for i in range(2):
        write_image(tmp_path / f"{i}.jpg", seed=i)
        binary_png(tmp_path / f"{i}.png", _mask(i), mode)
    dataset = build_dataset("msra10k", tmp_path)
    assert len(dataset) == 2
    for i in range(2):
        sample = dataset[i]
        assert sample.masks.shape == (1, H, W)
        np.testing.assert_array_equal(sample.masks[0], _mask(i))
        assert sample.meta == {"dataset": "msra10k", "file": str(tmp_path / f"{i}.jpg"), "condition": "clear",
                               "image_id": str(i), "category_ids": [1]}


def test_thin_object_layout(tmp_path):
    write_image(tmp_path / "images" / "bike.jpg")
    binary_png(tmp_path / "masks" / "bike.png", _mask(0))
    sample = build_dataset("thin_object_5k", tmp_path)[0]
    np.testing.assert_array_equal(sample.masks[0], _mask(0))
    assert sample.meta["dataset"] == "thin_object_5k"


def test_unpaired_files_are_reported(tmp_path, caplog):
    write_image(tmp_path / "images" / "a.jpg")
    binary_png(tmp_path / "masks" / "a.png", _mask(0))
    write_image(tmp_path / "images" / "no_mask.jpg")
    binary_png(tmp_path / "masks" / "no_image.png", _mask(0))
    with caplog.at_level(logging.WARNING):
        assert len(build_dataset("thin_object_5k", tmp_path)) == 1
    assert "no_mask.jpg" in caplog.text and "no_image.png" in caplog.text
    with pytest.raises(BadDataError, match="no_mask.jpg"):
        build_dataset("thin_object_5k", tmp_path, strict=True)


@pytest.mark.parametrize("damage, message", [("empty", "empty mask"), ("truncated", "truncated")])
def test_bad_mask_is_skipped_or_raises(tmp_path, caplog, damage, message):
    for name in ("a", "b"):
        write_image(tmp_path / f"{name}.jpg")
        binary_png(tmp_path / f"{name}.png", _mask(0))
    if damage == "empty":
        binary_png(tmp_path / "a.png", np.zeros((H, W), bool))
    else:
        truncate(tmp_path / "a.png")
    with caplog.at_level(logging.WARNING):
        assert build_dataset("msra10k", tmp_path)[0].meta["image_id"] == "b"
    assert "a.png" in caplog.text and message in caplog.text
    with pytest.raises(BadDataError, match=message):
        build_dataset("msra10k", tmp_path, strict=True)[0]


def test_missing_image_file_at_load(tmp_path):
    write_image(tmp_path / "a.jpg")
    binary_png(tmp_path / "a.png", _mask(0))
    dataset = build_dataset("msra10k", tmp_path, strict=True)
    (tmp_path / "a.jpg").unlink()
    with pytest.raises(BadDataError, match="a.jpg: file missing"):
        dataset[0]
