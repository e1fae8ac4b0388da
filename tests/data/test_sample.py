"""InstanceSample validates shapes, dtypes and required metadata."""
from __future__ import annotations

import numpy as np
import pytest

from gara_model.data import InstanceSample

META = {"dataset": "d", "file": "f.jpg", "condition": "clear", "image_id": 1}


def test_valid_sample():
    sample = InstanceSample(np.zeros((4, 5, 3), np.uint8), np.ones((2, 4, 5), bool), dict(META))
    assert sample.masks.shape == (2, 4, 5)


@pytest.mark.parametrize("image, masks, meta, message", [
    (np.zeros((4, 5, 3), np.float32), np.ones((1, 4, 5), bool), META, "image must be"),
    (np.zeros((4, 5), np.uint8), np.ones((1, 4, 5), bool), META, "image must be"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 4, 5), np.uint8), META, "masks must be"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 5, 4), bool), META, "differ in size"),
    (np.zeros((4, 5, 3), np.uint8), np.ones((1, 4, 5), bool), {"dataset": "d"}, "meta lacks"),
])
def test_invalid_samples(image, masks, meta, message):
    with pytest.raises(ValueError, match=message):
        InstanceSample(image, masks, meta)
