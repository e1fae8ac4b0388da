"""Corruption registry: every name runs, seeded determinism, argument errors, contact sheet."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gara_model.data import CORRUPTIONS, IMAGENET_C, ROBUST_SEG, CorruptionMix, SyntheticInstances, corrupt
from gara_model.data.contact_sheet import main as contact_sheet_main

#: Corruptions with no random part: the seed cannot change them.
DETERMINISTIC = {"resampling_blur"} | {f"imagenet_c/{n}" for n in (
    "defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression", "gaussian_blur",
    "saturate")}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return SyntheticInstances(size=1, image_size=64, seed=3)[0].image


def test_registry_lists_robust_seg_imagenet_c_and_low_light():
    assert len(ROBUST_SEG) == 15 and len(IMAGENET_C) == 19
    assert CORRUPTIONS == ROBUST_SEG + IMAGENET_C + ("night",) and len(set(CORRUPTIONS)) == 35


def test_night_is_dark_and_noisy(image):
    """Low light: mean brightness far below the clear image's, and pixel noise on a flat region."""
    flat = np.full((64, 64, 3), 128, np.uint8)
    night = corrupt(flat, "night", seed=1).astype(float)
    assert night.mean() < 0.35 * 128 and night.std() > 1.0
    assert corrupt(image, "night", seed=1).mean() < 0.6 * image.mean()


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_every_corruption_is_seeded_and_keeps_shape(image, name):
    state = np.random.get_state()[1].copy()
    first = corrupt(image, name, seed=7)
    assert first.shape == image.shape and first.dtype == np.uint8
    assert not np.array_equal(first, image)
    np.testing.assert_array_equal(first, corrupt(image, name, seed=7))
    assert np.array_equal(first, corrupt(image, name, seed=8)) == (name in DETERMINISTIC)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # numpy's global RNG is left alone


def test_imagenet_c_severity_grows(image):
    errors = [np.abs(corrupt(image, "imagenet_c/gaussian_noise", s, seed=0).astype(int) - image).mean()
              for s in (1, 3, 5)]
    assert errors[0] < errors[1] < errors[2]
    np.testing.assert_array_equal(corrupt(image, "imagenet_c/pixelate", None), corrupt(image, "imagenet_c/pixelate", 3))


def test_brightness_matches_robustsam_gain(image):
    ratio = corrupt(image, "brightness", seed=1).astype(float).sum() / image.astype(float).sum()
    assert 0.59 < ratio < 0.81


def test_argument_errors(image):
    with pytest.raises(ValueError, match=r"name='haze'.*valid names: snow, fog"):
        corrupt(image, "haze")
    with pytest.raises(ValueError, match="severity=6"):
        corrupt(image, "imagenet_c/fog", 6)
    with pytest.raises(ValueError, match="severity=2.*one fixed strength"):
        corrupt(image, "fog", 2)
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        corrupt(image.astype(np.float32), "fog")
    with pytest.raises(ValueError, match="at least 32"):
        corrupt(image[:20], "imagenet_c/fog")


def test_corruption_mix_draws_per_draw_and_is_reproducible():
    clean = SyntheticInstances(size=4, image_size=64)[2]
    mix = CorruptionMix(("fog", "imagenet_c/snow"), severity=2)
    sample = mix.apply(clean, np.random.default_rng([1, 2, 0]))
    assert sample.meta["condition"] in ("fog", "imagenet_c/snow") and sample.meta["source_condition"] == "clear"
    np.testing.assert_array_equal(sample.masks, clean.masks)
    assert not np.array_equal(sample.image, clean.image)
    np.testing.assert_array_equal(sample.image, mix.apply(clean, np.random.default_rng([1, 2, 0])).image)
    conditions = {mix.apply(clean, np.random.default_rng([1, 2, draw])).meta["condition"] for draw in range(8)}
    assert conditions == {"fog", "imagenet_c/snow"}  # a new corruption for every draw of the same image
    with pytest.raises(ValueError, match="unknown: \\['haze'\\]"):
        CorruptionMix(("haze",))


def test_clear_fraction_leaves_that_share_of_draws_as_they_are():
    clean = SyntheticInstances(size=1, image_size=64)[0]
    mix = CorruptionMix(("fog", "rain"), clear_fraction=0.25)
    conditions = [mix.apply(clean, np.random.default_rng([0, draw])).meta["condition"] for draw in range(400)]
    assert conditions.count("clear") / 400 == pytest.approx(0.25, abs=0.05)
    assert CorruptionMix(("fog",), clear_fraction=1.0).apply(clean, np.random.default_rng(0)) is clean
    with pytest.raises(ValueError, match="clear_fraction"):
        CorruptionMix(("fog",), clear_fraction=1.5)


def test_contact_sheet_command(tmp_path):
    out = tmp_path / "sheet.png"
    contact_sheet_main(["--out", str(out), "--size", "48"])
    sheet = np.asarray(Image.open(out))
    tiles = len(CORRUPTIONS) + 1
    assert sheet.shape == (-(-tiles // 6) * (48 + 16), 6 * 48, 3)
