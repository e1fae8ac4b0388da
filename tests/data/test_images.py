"""Image and mask decoding: 16-bit files scale to 8 bits, soft masks split at half intensity."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from gara_model.data import BadDataError, build_dataset
from gara_model.data.images import read_binary_mask, read_rgb

from .formats import H, W, write_image

#: 16-bit levels spanning the range; their 8-bit value is the high byte.
_LEVELS_16 = (np.arange(H * W, dtype=np.int64).reshape(H, W) * 65535 // (H * W - 1)).astype(np.uint16)


def test_16_bit_grey_png_scales_to_8_bit(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(_LEVELS_16).save(path)  # mode I;16
    assert Image.open(path).mode.startswith("I")
    rgb = read_rgb(path)
    expected = (_LEVELS_16 >> 8).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)
    assert rgb.min() == 0 and rgb.max() == 255 and 120 < rgb.mean() < 135  # not clipped to white


def test_16_bit_colour_png_scales_to_8_bit(tmp_path):
    path = tmp_path / "rgb16.png"
    rgb16 = np.stack([_LEVELS_16, 65535 - _LEVELS_16, _LEVELS_16 // 2], axis=2)
    cv2.imwrite(str(path), rgb16[..., ::-1])  # cv2 writes BGR, 16 bits per channel
    np.testing.assert_array_equal(read_rgb(path), (rgb16 >> 8).astype(np.uint8))


def _soft_mask(full_scale: int) -> tuple[np.ndarray, np.ndarray]:
    """An anti-aliased square: inside at ``full_scale``, an edge ring at 3/4 and one at 1/4.
    Returns (levels, the mask at half intensity: inside + the 3/4 ring)."""
    levels = np.zeros((H, W), np.int64)
    levels[8:32, 10:40] = full_scale // 4
    levels[9:31, 11:39] = 3 * full_scale // 4
    levels[10:30, 12:38] = full_scale
    return levels, levels > full_scale // 2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_soft_mask_splits_at_half_intensity(tmp_path, dtype):
    levels, expected = _soft_mask(np.iinfo(dtype).max)
    Image.fromarray(levels.astype(dtype)).save(tmp_path / "soft.png")
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "soft.png"), expected)


def test_faint_soft_mask_splits_at_half_its_brightest_level(tmp_path):
    levels, expected = _soft_mask(100)  # never reaches 128; read as "empty mask" before
    Image.fromarray(levels.astype(np.uint8)).save(tmp_path / "faint.png")
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "faint.png"), expected)


def test_grey_mask_saved_as_rgb_reads_as_grey(tmp_path):
    levels, expected = _soft_mask(255)
    Image.fromarray(np.repeat(levels.astype(np.uint8)[..., None], 3, axis=2)).save(tmp_path / "grey_rgb.png")
    np.testing.assert_array_equal(read_binary_mask(tmp_path / "grey_rgb.png"), expected)


def test_msra10k_with_soft_masks(tmp_path):
    levels, expected = _soft_mask(255)
    write_image(tmp_path / "a.jpg")
    Image.fromarray(levels.astype(np.uint8)).save(tmp_path / "a.png")
    np.testing.assert_array_equal(build_dataset("msra10k", tmp_path)[0].masks[0], expected)


def test_float_image_is_bad_data(tmp_path):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.ones((H, W), np.float32)).save(path)
    with pytest.raises(BadDataError, match="float.tiff: floating-point image"):
        read_rgb(path)
