"""Procedural scenes: seeded, exact masks, objects distinct from the background, any access order.

Their speed is measured by bench/synthetic.py, not here.
"""
from __future__ import annotations

import numpy as np
import pytest

from gara_model.data import InstanceSample, SyntheticInstances, render_scene
from gara_model.data.synthetic import SHAPES


def test_same_seed_same_scene_different_seed_different_scene():
    a, b = SyntheticInstances(size=5, seed=1), SyntheticInstances(size=5, seed=1)
    np.testing.assert_array_equal(a[3].image, b[3].image)
    np.testing.assert_array_equal(a[3].masks, b[3].masks)
    assert not np.array_equal(a[3].image, SyntheticInstances(size=5, seed=2)[3].image)
    assert not np.array_equal(a[3].image, a[4].image)


def test_masks_match_the_painted_pixels():
    for seed in range(30):
        scene = render_scene(np.random.default_rng(seed), 96, (1, 5))
        assert 1 <= len(scene.masks) <= 5 and len(scene.shapes) == len(scene.masks)
        assert scene.masks.sum(axis=0).max() == 1  # disjoint
        assert (scene.masks.reshape(len(scene.masks), -1).sum(axis=1) >= 18).all()
        background = ~scene.masks.any(axis=0)
        np.testing.assert_array_equal(scene.image[background], scene.background[background])
        for mask in scene.masks:  # an object differs from the background it covers
            diff = np.abs(scene.image[mask].astype(int) - scene.background[mask]).mean()
            assert diff > 10


def test_dataset_samples_and_variety():
    dataset = SyntheticInstances(size=200, image_size=64, num_objects=(2, 3), seed=0)
    sample = dataset[7]
    assert isinstance(sample, InstanceSample) and sample.image.shape == (64, 64, 3)
    assert sample.meta["dataset"] == "synthetic" and sample.meta["condition"] == "clear"
    assert len(sample.meta["category_ids"]) == len(sample.masks)
    counts = [len(dataset[i].masks) for i in range(200)]
    assert set(counts) <= {2, 3} and {2, 3} <= set(counts)
    kinds = {c for i in range(200) for c in dataset[i].meta["category_ids"]}
    assert kinds == set(range(1, len(SHAPES) + 1))


def test_the_default_dataset_gives_valid_scenes_in_any_access_order():
    """What the loader's workers rely on (each renders its own indices); the speed is bench/synthetic.py's."""
    dataset = SyntheticInstances(size=40)
    in_order = [dataset[i] for i in range(40)]
    backwards = {i: dataset[i] for i in reversed(range(40))}
    min_area = 0.002 * 128 * 128  # docs/data.md: every mask keeps at least 0.2% of the image
    for i, sample in enumerate(in_order):
        np.testing.assert_array_equal(sample.image, backwards[i].image)
        np.testing.assert_array_equal(sample.masks, backwards[i].masks)
        assert sample.image.shape == (128, 128, 3) and 1 <= len(sample.masks) <= 4
        assert sample.masks.sum(axis=0).max() == 1  # disjoint
        assert (sample.masks.reshape(len(sample.masks), -1).sum(1) >= min_area).all()
        assert sample.meta["image_id"] == i


def test_argument_errors():
    with pytest.raises(ValueError, match="size=0"):
        SyntheticInstances(size=0)
    with pytest.raises(ValueError, match="num_objects"):
        render_scene(np.random.default_rng(0), 64, (3, 2))
    with pytest.raises(ValueError, match="image_size=16"):
        render_scene(np.random.default_rng(0), 16)
