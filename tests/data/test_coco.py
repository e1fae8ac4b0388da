"""COCO-format readers: LIS, ACDC, LVIS layouts, RLE + polygon decoding, bad data."""
from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest
from .formats import ACDC_FILES, H, W, coco_json, compressed_rle, rle_mask, truncate, uncompressed_rle, write_image

from gara_model.data import BadDataError, CocoInstances, build_dataset


def _check_polygon(mask: np.ndarray) -> None:
    """POLYGON covers x 10..30, y 20..35: its inside is set, nothing outside it."""
    assert mask[21:35, 11:30].all()
    outside = np.ones_like(mask)
    outside[19:37, 9:32] = False
    assert not mask[outside].any()


def test_lis_reads_rle_and_polygon_with_night_condition(lis_root):
    dataset = build_dataset("lis", lis_root, "train")
    assert len(dataset) == 2
    sample = dataset[0]
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    assert sample.masks.shape == (2, H, W) and sample.masks.dtype == np.bool_
    np.testing.assert_array_equal(sample.masks[0], rle_mask())
    _check_polygon(sample.masks[1])
    assert sample.meta["category_ids"] == [3, 5]
    assert sample.meta["dataset"] == "lis" and sample.meta["condition"] == "night"
    assert sample.meta["file"] == str(lis_root / "RGB-dark" / "JPEGImages" / "2.JPG")
    assert sample.meta["image_id"] == 1
    assert dataset[1].meta["file"].endswith("4.JPG")  # file_name without the JPEGImages/ prefix


def test_acdc_condition_comes_from_the_path(acdc_root):
    dataset = build_dataset("acdc", acdc_root, "train")
    assert [dataset[i].meta["condition"] for i in range(2)] == ["fog", "night"]
    assert dataset[0].meta["file"] == str(acdc_root / "rgb_anon" / ACDC_FILES[0])
    np.testing.assert_array_equal(dataset[0].masks[0], rle_mask())
    _check_polygon(dataset[0].masks[1])


def test_datasets_pickle_for_worker_processes(acdc_root, lis_root):
    for dataset in (build_dataset("acdc", acdc_root), build_dataset("lis", lis_root)):
        copy = pickle.loads(pickle.dumps(dataset))
        assert copy[1].meta == dataset[1].meta


def test_acdc_file_outside_condition_folders_is_reported(tmp_path, caplog):
    root = tmp_path / "ACDC"
    write_image(root / "rgb_anon" / "ref" / "a.png")
    coco_json(root / "gt_detection" / "instancesonly_val_gt_detection.json", ["ref/a.png"])
    with caplog.at_level(logging.WARNING):
        assert len(build_dataset("acdc", root, "val")) == 0
    assert "ref/a.png" in caplog.text
    with pytest.raises(BadDataError, match="ref/a.png"):
        build_dataset("acdc", root, "val", strict=True)


def test_uncompressed_rle_and_crowd_excluded(tmp_path):
    write_image(tmp_path / "img" / "a.jpg")
    crowd = {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": compressed_rle(~rle_mask())}
    plain = {"id": 8, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": uncompressed_rle(rle_mask())}
    ann = coco_json(tmp_path / "a.json", ["a.jpg"], [crowd, plain])
    sample = CocoInstances(ann, tmp_path / "img")[0]
    assert sample.masks.shape[0] == 3  # RLE, polygon, uncompressed RLE; not the crowd
    np.testing.assert_array_equal(sample.masks[2], rle_mask())
    assert sample.meta["condition"] == "clear" and sample.meta["dataset"] == "coco"
    with_crowd = CocoInstances(ann, tmp_path / "img", include_crowd=True)[0]
    np.testing.assert_array_equal(with_crowd.masks[2], ~rle_mask())


def test_lvis_file_name_from_coco_url(tmp_path):
    write_image(tmp_path / "val2017" / "000000000139.jpg")
    data = {"images": [{"id": 139, "height": H, "width": W,
                        "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg"}],
            "annotations": [{"id": 1, "image_id": 139, "category_id": 2, "segmentation": [[0, 0, 20, 0, 20, 20]],
                             "area": 200.0, "bbox": [0, 0, 20, 20]}],
            "categories": [{"id": 2, "name": "x", "frequency": "f"}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "lvis_v1_val.json").write_text(json.dumps(data))
    sample = build_dataset("lvis", tmp_path, "val")[0]
    assert sample.meta["file"] == str(tmp_path / "val2017" / "000000000139.jpg")
    assert sample.meta["dataset"] == "lvis" and sample.masks[0, 2, 5] and not sample.masks[0, 15, 2]


def test_annotation_for_missing_image_id_and_missing_file(tmp_path, caplog):
    write_image(tmp_path / "img" / "a.jpg")
    orphan = {"id": 99, "image_id": 42, "category_id": 1, "segmentation": POLY}
    ann = coco_json(tmp_path / "ann.json", ["a.jpg", "gone.jpg"], [orphan])
    with caplog.at_level(logging.WARNING):
        dataset = CocoInstances(ann, tmp_path / "img")
    assert len(dataset) == 1
    assert "ann.json" in caplog.text and "image id 42" in caplog.text
    assert "gone.jpg" in caplog.text
    with pytest.raises(BadDataError, match="image id 42"):
        CocoInstances(ann, tmp_path / "img", strict=True)


POLY = [[1.0, 1.0, 8.0, 1.0, 8.0, 8.0]]


def test_truncated_image_is_skipped_or_raises(tmp_path, caplog):
    for name in ("a.jpg", "b.jpg"):
        write_image(tmp_path / "img" / name)
    truncate(tmp_path / "img" / "a.jpg")
    ann = coco_json(tmp_path / "ann.json", ["a.jpg", "b.jpg"])
    dataset = CocoInstances(ann, tmp_path / "img")
    with caplog.at_level(logging.WARNING):
        sample = dataset[0]
    assert sample.meta["file"].endswith("b.jpg")
    assert "a.jpg" in caplog.text and "truncated" in caplog.text
    with pytest.raises(BadDataError, match="a.jpg"):
        CocoInstances(ann, tmp_path / "img", strict=True)[0]


def test_empty_mask_is_dropped_or_raises(tmp_path, caplog):
    write_image(tmp_path / "img" / "a.jpg")
    empty = {"id": 5, "image_id": 1, "category_id": 1, "segmentation": compressed_rle(np.zeros((H, W), bool))}
    ann = coco_json(tmp_path / "ann.json", ["a.jpg"], [empty])
    with caplog.at_level(logging.WARNING):
        sample = CocoInstances(ann, tmp_path / "img")[0]
    assert sample.masks.shape[0] == 2
    assert "annotation 5 has an empty mask" in caplog.text and "a.jpg" in caplog.text
    with pytest.raises(BadDataError, match="annotation 5"):
        CocoInstances(ann, tmp_path / "img", strict=True)[0]


def test_image_size_mismatch_and_unknown_builder(tmp_path):
    write_image(tmp_path / "img" / "a.jpg", height=H + 1)
    with pytest.raises(BadDataError, match="annotation says"):
        CocoInstances(coco_json(tmp_path / "ann.json", ["a.jpg"]), tmp_path / "img", strict=True)[0]
    with pytest.raises(ValueError, match="name='kitti'"):
        build_dataset("kitti", tmp_path)


def test_every_sample_bad_raises_runtime_error(tmp_path):
    write_image(tmp_path / "img" / "a.jpg")
    truncate(tmp_path / "img" / "a.jpg")
    with pytest.raises(RuntimeError, match="no readable sample"):
        CocoInstances(coco_json(tmp_path / "ann.json", ["a.jpg"]), tmp_path / "img")[0]
