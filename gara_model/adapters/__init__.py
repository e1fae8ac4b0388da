"""Gated-rank adapters (paper sec. 3.3): the layer, its gates and the variants used in the ablations."""

from gara_model.adapters.layer import GaraLinear, GatedRankAdapter
from gara_model.adapters.variants import VARIANTS, Gates

__all__ = ["GaraLinear", "GatedRankAdapter", "Gates", "VARIANTS"]
