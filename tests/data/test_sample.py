"""InstanceSample validates shapes, dtypes and required metadata."""
from __future__ import annotations

import numpy as np
import pytest

from gara_model.data import InstanceSample

META = {"dataset": "d", "file": "f.jpg", "condition": "clear", "image_id": 1}


@pytest.mark.parametrize("count", [1, 3])
def test_a_valid_sample_keeps_what_it_was_given(count):
    """No copy and no conversion: the reader's arrays and metadata (extra keys too) are the sample's."""
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    masks = np.zeros((count, 4, 5), bool)
    masks[:, 1:3, 2:] = True
    meta = {**META, "category_ids": list(range(count))}
    sample = InstanceSample(image, masks, meta)
    assert sample.image is image and sample.masks is masks and sample.meta is meta
    assert sample.meta["category_ids"] == list(range(count)) and int(sample.masks.sum()) == count * 6


@pytest.mark.parametrize("image, masks, meta, message", [
    (np.zeros((4, 5, 3), np.float32), np.ones((1, 4, 5), bool), META, "image must be"),
    (np.zeros((4, 5), np.uint8), np.ones((1, 4, 5), bool), META, "image must be"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 4, 5), np.uint8), META, "masks must be"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 5, 4), bool), META, "differ in size"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 4, 5), bool), {"dataset": "d"}, "meta lacks"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((4, 5), bool), META, "masks must be"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 4, 5), bool), {k: v for k, v in META.items() if k != "image_id"},
     r"meta lacks \['image_id'\]"),
])
def test_invalid_samples(image, masks, meta, message):
    with pytest.raises(ValueError, match=message):
        InstanceSample(image, masks, meta)
