"""Do the gates decide per input? Numbers from the gate decisions of many images (scenes under conditions).

- `varying_share`: the share of gate decisions that are not the same for every image (both values taken by at least
  `min_share` of the images);
- `condition_accuracy`: how well a linear classifier (logistic regression) reads an image's condition from its gate
  decisions, trained on some scenes and tested on others (grouped cross-validation), next to `chance`;
- `condition_to_content`: how much a condition changes one scene's gates (mean Hamming distance between the same
  scene under two conditions) relative to how much content changes them (two scenes under the same condition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class GateAdaptivity:
    images: int
    scenes: int
    conditions: int
    decisions: int  # binary gate decisions per image
    varying_share: float
    condition_accuracy: float | None  # None with fewer than 2 conditions or 2 scenes
    chance: float | None  # share of the most frequent condition: what always guessing it scores
    condition_change: float | None  # mean share of decisions that differ between conditions of one scene
    content_change: float | None  # mean share of decisions that differ between scenes of one condition
    min_share: float

    @property
    def condition_to_content(self) -> float | None:
        if self.condition_change is None or not self.content_change:
            return None
        return self.condition_change / self.content_change


def mean_pairwise_hamming(decisions: np.ndarray) -> float | None:
    """Mean over pairs of rows of the share of positions where two rows differ: n x D {0, 1} -> float (None: n < 2)."""
    n, width = decisions.shape
    if n < 2 or width == 0:
        return None
    ones = decisions.sum(axis=0).astype(np.float64)  # per position, how many rows are 1
    differing_pairs = (ones * (n - ones)).sum()  # pairs (i, j), i != j unordered, that differ, summed over positions
    return float(differing_pairs / (n * (n - 1) / 2) / width)


def gate_adaptivity(decisions: np.ndarray, conditions: Sequence[str], scenes: Sequence, min_share: float = 0.01,
                    folds: int = 5, seed: int = 0) -> GateAdaptivity:
    """decisions: N x D bool, one row per image; conditions and scenes: N labels (the same scene id for the views
    of one scene under different conditions)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    decisions = np.asarray(decisions, dtype=bool)
    conditions, scenes = np.asarray(conditions), np.asarray(scenes)
    n, width = decisions.shape
    on_share = decisions.mean(axis=0) if n else np.zeros(width)
    varying = float(np.mean(np.minimum(on_share, 1 - on_share) >= min_share)) if width else 0.0
    names, counts = np.unique(conditions, return_counts=True)
    scene_ids = np.unique(scenes)
    accuracy = chance = condition_change = content_change = None
    if len(names) >= 2 and len(scene_ids) >= 2:
        chance = float(counts.max() / n)
        predicted = np.empty(n, dtype=conditions.dtype)
        features = decisions.astype(np.float32)
        for train, test in GroupKFold(n_splits=min(folds, len(scene_ids))).split(features, conditions, scenes):
            if len(np.unique(conditions[train])) < 2:
                predicted[test] = conditions[train][0]
                continue
            model = LogisticRegression(max_iter=2000, random_state=seed).fit(features[train], conditions[train])
            predicted[test] = model.predict(features[test])
        accuracy = float(np.mean(predicted == conditions))
        per_scene = [mean_pairwise_hamming(decisions[scenes == s]) for s in scene_ids]
        per_condition = [mean_pairwise_hamming(decisions[conditions == c]) for c in names]
        condition_change = _mean([v for v in per_scene if v is not None])
        content_change = _mean([v for v in per_condition if v is not None])
    return GateAdaptivity(n, len(scene_ids), len(names), width, varying, accuracy, chance, condition_change,
                          content_change, min_share)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None
