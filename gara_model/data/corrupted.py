"""A dataset wrapper that degrades each image with a corruption from a list."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from .corruptions import CORRUPTIONS, ROBUST_SEG, corrupt
from .sample import InstanceSample


class CorruptedInstances(Dataset):
    """Sample ``i`` of ``dataset`` with a corruption drawn from ``names`` by
    ``default_rng([seed, epoch, i])``; ``meta["condition"]`` becomes the corruption
    name and ``meta["source_condition"]`` keeps the original. Masks are kept as they
    are, as RobustSAM did (``elastic_transform`` and ``frosted_glass_blur`` move
    pixels by a few px). Call ``set_epoch`` to draw new corruptions each epoch.
    """

    def __init__(self, dataset: Dataset, names: Sequence[str] = ROBUST_SEG, severity: int | None = None,
                 seed: int = 0) -> None:
        unknown = [name for name in names if name not in CORRUPTIONS]
        if not names or unknown:
            raise ValueError(f"names must be a non-empty subset of CORRUPTIONS; unknown: {unknown}")
        self.dataset, self.names, self.severity, self.seed, self.epoch = dataset, tuple(names), severity, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> InstanceSample:
        sample = self.dataset[index]
        rng = np.random.default_rng([self.seed, self.epoch, index % len(self)])
        name = self.names[rng.integers(len(self.names))]
        severity = self.severity if name not in ROBUST_SEG else None
        image = corrupt(sample.image, name, severity, seed=int(rng.integers(2 ** 32)))
        meta = {**sample.meta, "condition": name, "source_condition": sample.meta["condition"]}
        return replace(sample, image=image, meta=meta)
