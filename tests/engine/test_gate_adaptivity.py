"""The gate-adaptivity numbers on decisions built to vary with the condition, with the content, and built constant."""

import itertools

import numpy as np
import pytest

from gara_model.engine.gate_adaptivity import gate_adaptivity, mean_pairwise_hamming

CONDITIONS = ["clear", "fog", "night", "snow"]
SCENES = 12


def views(decide):
    """decisions, conditions and scenes of every scene under every condition; decide(scene, k) -> bool vector."""
    rows = [(s, c, decide(s, k)) for s in range(SCENES) for k, c in enumerate(CONDITIONS)]
    return np.stack([r[2] for r in rows]), [r[1] for r in rows], [r[0] for r in rows]


def test_mean_pairwise_hamming_equals_brute_force():
    rows = np.random.default_rng(0).random((7, 9)) > 0.5
    brute = np.mean([np.mean(a != b) for a, b in itertools.combinations(rows, 2)])
    assert mean_pairwise_hamming(rows) == pytest.approx(brute)
    assert mean_pairwise_hamming(rows[:1]) is None


def test_constant_gates_vary_nowhere_and_tell_nothing():
    decisions, conditions, scenes = views(lambda s, k: np.array([1, 0, 1, 1, 0], bool))
    a = gate_adaptivity(decisions, conditions, scenes)
    assert (a.images, a.scenes, a.conditions, a.decisions) == (48, 12, 4, 5)
    assert a.varying_share == 0.0 and a.chance == 0.25
    assert a.condition_accuracy == pytest.approx(0.25)  # the same guess for every image: right for one condition in four
    assert a.condition_change == 0.0 and a.content_change == 0.0 and a.condition_to_content is None


def test_gates_that_encode_the_condition_are_read_on_held_out_scenes():
    """Bits 0-3: one-hot condition; bits 4-11: the scene's own random pattern."""
    patterns = np.random.default_rng(1).random((SCENES, 8)) > 0.5
    decisions, conditions, scenes = views(lambda s, k: np.concatenate([np.eye(4, dtype=bool)[k], patterns[s]]))
    a = gate_adaptivity(decisions, conditions, scenes)
    assert a.condition_accuracy == 1.0 and a.varying_share == pytest.approx((4 + patterns.std(0).astype(bool).sum()) / 12)
    assert a.condition_change == pytest.approx(2 / 12)  # two conditions of one scene differ in two one-hot bits
    assert a.content_change == pytest.approx(mean_pairwise_hamming(patterns) * 8 / 12)
    assert a.condition_to_content == pytest.approx(a.condition_change / a.content_change)


def test_gates_that_follow_only_the_content_do_not_tell_the_condition():
    patterns = np.random.default_rng(2).random((SCENES, 10)) > 0.5
    decisions, conditions, scenes = views(lambda s, k: patterns[s])
    a = gate_adaptivity(decisions, conditions, scenes)
    assert a.varying_share > 0.5 and a.condition_change == 0.0 and a.condition_to_content == 0.0
    assert a.condition_accuracy <= 0.3  # scene patterns are the same under every condition: no better than chance


def test_min_share_ignores_decisions_that_flip_for_too_few_images():
    decisions, conditions, scenes = views(lambda s, k: np.array([s == 0 and k == 0, k == 1], bool))  # 1 of 48; 12 of 48
    assert gate_adaptivity(decisions, conditions, scenes, min_share=0.05).varying_share == 0.5
    assert gate_adaptivity(decisions, conditions, scenes, min_share=0.01).varying_share == 1.0
