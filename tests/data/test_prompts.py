"""Prompts: random points inside masks, tight and jittered boxes, the deterministic eval protocol."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from gara_model.data import EVAL_PROTOCOL, eval_prompts, training_prompts
from gara_model.data.prompts import interior_points, jitter_boxes, mask_boxes, random_points


@pytest.fixture
def masks() -> np.ndarray:
    masks = np.zeros((3, 30, 40), dtype=bool)
    masks[0, 5:12, 8:30] = True                      # rectangle
    cv2.circle(masks[1].view(np.uint8), (20, 15), 9, 1, -1)
    masks[1, 15, 20] = True
    masks[2, 0:30, 0:3] = True                       # touches the image border
    masks[2, 29, 39] = True                          # plus a lone pixel
    return masks


def test_boxes_are_mask_bounds(masks):
    np.testing.assert_array_equal(mask_boxes(masks), [[8, 5, 29, 11], [11, 6, 29, 24], [0, 0, 39, 29]])


def test_random_points_lie_in_their_mask(masks):
    points = random_points(masks, 5, np.random.default_rng(0))
    assert points.shape == (3, 5, 2) and points.dtype == np.float32
    for mask, pts in zip(masks, points):
        assert mask[pts[:, 1].astype(int), pts[:, 0].astype(int)].all()  # (x, y) order
    tiny = np.zeros((1, 5, 5), bool)
    tiny[0, 2, 3] = True
    np.testing.assert_array_equal(random_points(tiny, 3, np.random.default_rng(0))[0], [[3, 2]] * 3)


def test_interior_point_is_distance_transform_max(masks):
    points = interior_points(masks)
    for mask, (x, y) in zip(masks, points.astype(int)):
        distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        assert distance[y + 1, x + 1] == distance.max()
    assert tuple(points[1]) == (20, 15)  # disc centre
    # ties: first pixel in row-major order; image border counts as background
    assert tuple(points[2]) == (1, 1)


def test_training_prompts_modes(masks):
    rng = np.random.default_rng(0)
    points_only = training_prompts(masks, rng, "points", k=4)
    assert points_only.points.shape == (3, 4, 2) and points_only.boxes is None
    assert (points_only.labels == 1).all() and points_only.labels.shape == (3, 4)
    box_only = training_prompts(masks, rng, "box", box_jitter=0.0)
    assert box_only.points is None
    np.testing.assert_array_equal(box_only.boxes, mask_boxes(masks))
    both = training_prompts(masks, rng, "both")
    assert both.points is not None and both.boxes is not None
    kinds = {(p.points is None, p.boxes is None) for p in (training_prompts(masks, rng) for _ in range(40))}
    assert kinds == {(False, True), (True, False), (False, False)}
    with pytest.raises(ValueError, match="mode='clicks'"):
        training_prompts(masks, rng, "clicks")


def test_jitter_is_bounded_and_clipped(masks):
    boxes = mask_boxes(masks)
    size = np.tile(boxes[:, 2:] - boxes[:, :2] + 1, 2)
    for seed in range(20):
        jittered = jitter_boxes(boxes, (30, 40), 0.1, np.random.default_rng(seed))
        assert (np.abs(jittered - boxes) <= 0.1 * size + 1e-4).all()
        assert (jittered >= 0).all() and (jittered[:, 0::2] <= 39).all() and (jittered[:, 1::2] <= 29).all()
    assert not np.array_equal(jittered, boxes)
    with pytest.raises(ValueError, match="max_fraction=-1"):
        jitter_boxes(boxes, (30, 40), -1, np.random.default_rng(0))


# What each version of the evaluation protocol prompts for the `masks` fixture (2 extra points, seed 5). Changing
# eval_prompts' output needs a new EVAL_PROTOCOL with its entry here, so that results rows of two protocols (EvalRow
# records the tag) are never taken for one.
PROTOCOL_PROMPTS = {
    "gara-eval-v1": {
        "points": [[[11, 8], [21, 10], [22, 9]], [[20, 15], [28, 19], [12, 15]], [[1, 1], [2, 18], [2, 8]]],
        "boxes": [[8, 5, 29, 11], [11, 6, 29, 24], [0, 0, 39, 29]],
    },
}


def test_the_protocol_tag_names_the_prompts_it_gives(masks):
    expected = PROTOCOL_PROMPTS[EVAL_PROTOCOL]
    prompts = eval_prompts(masks, num_random_points=2, seed=5)
    np.testing.assert_array_equal(prompts.points, expected["points"])
    np.testing.assert_array_equal(prompts.boxes, expected["boxes"])
    np.testing.assert_array_equal(prompts.labels, np.ones((3, 3)))


def test_eval_protocol_is_deterministic(masks):
    first = eval_prompts(masks, num_random_points=2, seed=5)
    assert first.points.shape == (3, 3, 2) and first.labels.shape == (3, 3)
    np.testing.assert_array_equal(first.points[:, 0], interior_points(masks))
    np.testing.assert_array_equal(first.boxes, mask_boxes(masks))
    again = eval_prompts(masks, num_random_points=2, seed=5)
    np.testing.assert_array_equal(first.points, again.points)
    assert eval_prompts(masks).points.shape == (3, 1, 2)


def test_empty_mask_is_rejected():
    with pytest.raises(ValueError, match="at least one pixel"):
        mask_boxes(np.zeros((1, 4, 4), bool))
