"""The corruptions a training image is shown under: drawn anew for every draw of the image."""
from __future__ import annotations

from dataclasses import dataclass, replace
import numpy as np

from .corruptions import CORRUPTIONS, corrupt, corruption_severity
from .sample import InstanceSample


@dataclass(frozen=True)
class CorruptionMix:
    """Each draw of a training image is left as it is with probability ``clear_fraction``, else degraded by one of
    ``names`` picked uniformly (``severity`` for ImageNet-C names: a fixed level, or None for a random one of 1-5).

    Drawn from the rng the caller passes, so a draw (image index, step) always gets the same corruption and every
    clean image is seen under every corruption over the run, as in Robust-Seg. ``meta["condition"]`` becomes the
    corruption name and ``meta["source_condition"]`` keeps the original. Masks are kept as they are, as RobustSAM
    did (``elastic_transform`` and ``frosted_glass_blur`` move pixels by a few px).
    """

    names: tuple[str, ...]
    severity: int | None = None
    clear_fraction: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        unknown = [name for name in self.names if name not in CORRUPTIONS]
        if not self.names or unknown:
            raise ValueError(f"names must be a non-empty subset of CORRUPTIONS; unknown: {unknown}")
        if not 0.0 <= self.clear_fraction <= 1.0:
            raise ValueError(f"clear_fraction must be in [0, 1], got {self.clear_fraction}")

    def apply(self, sample: InstanceSample, rng: np.random.Generator) -> InstanceSample:
        """The sample under the corruption drawn from ``rng`` (or as it is)."""
        if rng.random() < self.clear_fraction:
            return sample
        name = self.names[rng.integers(len(self.names))]
        severity = corruption_severity(name, self.severity if self.severity is not None else int(rng.integers(1, 6)))
        image = corrupt(sample.image, name, severity, seed=int(rng.integers(2**32)))
        meta = {**sample.meta, "condition": name, "source_condition": sample.meta["condition"]}
        return replace(sample, image=image, meta=meta)
