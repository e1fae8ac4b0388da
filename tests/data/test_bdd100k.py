"""BDD100K bitmasks: bit layout, crowd/ignore excluded, conditions from frame attributes."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import ConcatDataset

from gara_model.data import BadDataError, bdd100k_condition, build_dataset, decode_bitmask
from gara_model.data.bdd100k import CROWD, IGNORE, OCCLUDED

from .formats import BDD_INSTANCES, H, W, bitmask, truncate


def _region_mask(index: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[BDD_INSTANCES[index][0]] = True
    return mask


def test_decode_bitmask_bit_layout():
    masks, categories, flags = decode_bitmask(bitmask(BDD_INSTANCES))
    # sorted by instance id (B << 8) + A: 1, 3, 4, 258
    assert categories.tolist() == [3, 1, 8, 1]
    assert flags.tolist() == [0, CROWD, IGNORE, OCCLUDED]
    for mask, index in zip(masks, (0, 2, 3, 1)):
        np.testing.assert_array_equal(mask, _region_mask(index))


def test_reader_excludes_crowd_and_ignore_and_reads_conditions(bdd_root):
    dataset = build_dataset("bdd100k", bdd_root, "train")
    assert len(dataset) == 3
    by_id = {dataset[i].meta["image_id"]: dataset[i] for i in range(3)}
    sample = by_id["night-frame"]
    assert sample.masks.shape == (2, H, W)
    np.testing.assert_array_equal(sample.masks[0], _region_mask(0))
    np.testing.assert_array_equal(sample.masks[1], _region_mask(1))
    assert sample.meta["category_ids"] == [3, 1]
    assert sample.meta["condition"] == "night"
    assert sample.meta["file"] == str(bdd_root / "images" / "10k" / "train" / "night-frame.jpg")
    assert by_id["rainy-frame"].meta["condition"] == "rain"
    assert by_id["no-attributes"].meta["condition"] == "unknown"


@pytest.mark.parametrize("attributes, condition", [
    ({"weather": "clear", "timeofday": "night"}, "night"),
    ({"weather": "snowy", "timeofday": "night"}, "night"),
    ({"weather": "snowy", "timeofday": "daytime"}, "snow"),
    ({"weather": "foggy", "timeofday": "dawn/dusk"}, "fog"),
    ({"weather": "rainy", "timeofday": "daytime"}, "rain"),
    ({"weather": "overcast", "timeofday": "daytime"}, "clear"),
    ({"weather": "undefined", "timeofday": "undefined"}, "clear"),
])
def test_condition_rule(attributes, condition):
    assert bdd100k_condition(attributes) == condition


def test_bad_bitmasks_are_skipped_or_raise(bdd_root, caplog):
    bitmasks = bdd_root / "labels" / "ins_seg" / "bitmasks" / "train"
    truncate(bitmasks / "night-frame.png")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(bitmasks / "rainy-frame.png")  # RGB, not RGBA
    Image.fromarray(bitmask(BDD_INSTANCES)).save(bitmasks / "orphan.png")
    with caplog.at_level(logging.WARNING):
        dataset = build_dataset("bdd100k", bdd_root, "train")
        assert len(dataset) == 3  # night-frame, no-attributes, rainy-frame; orphan left out
        assert [dataset[i].meta["image_id"] for i in range(3)] == ["no-attributes"] * 3
    assert "orphan.png" in caplog.text and "missing image" in caplog.text
    assert "night-frame.png: cannot decode" in caplog.text
    assert "rainy-frame.png: expected an RGBA image" in caplog.text
    with pytest.raises(BadDataError, match="orphan.png"):
        build_dataset("bdd100k", bdd_root, "train", strict=True)
    (bitmasks / "orphan.png").unlink()
    with pytest.raises(BadDataError, match="night-frame.png"):
        build_dataset("bdd100k", bdd_root, "train", strict=True)[0]


def test_only_crowd_instances_is_bad_data(bdd_root):
    bitmasks = bdd_root / "labels" / "ins_seg" / "bitmasks" / "train"
    Image.fromarray(bitmask(BDD_INSTANCES[2:])).save(bitmasks / "night-frame.png")
    dataset = build_dataset("bdd100k", bdd_root, "train", strict=True)
    with pytest.raises(BadDataError, match="crowd/ignore"):
        dataset[0]


def test_bdd100k_plus_lis_keeps_metadata(bdd_root, lis_root):
    combined = build_dataset("bdd100k", bdd_root) + build_dataset("lis", lis_root)
    assert isinstance(combined, ConcatDataset) and len(combined) == 5
    assert [combined[i].meta["dataset"] for i in range(5)] == ["bdd100k"] * 3 + ["lis"] * 2
    assert combined[3].meta["condition"] == "night" and combined[3].masks.shape == (2, H, W)
