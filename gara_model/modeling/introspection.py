"""Which rank space and how many components each adapter used for an image (the paper's figure 6), as data."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from torch import nn

from gara_model.adapters.variants import GateVariant, Gates


@dataclass(frozen=True)
class AdapterGates:
    """One adapter's decision for one image. rank_space: "low", "high", or None (variant without gating 1)."""

    adapter: str
    rank_space: str | None
    active_components: int


@dataclass(frozen=True)
class GateSummary:
    """Every adapter's decision for one image."""

    adapters: tuple[AdapterGates, ...]

    @property
    def high_rank_share(self) -> float:
        """Share of adapters that chose the higher-rank set (0.0 when no adapter has gating 1)."""
        spaces = [a.rank_space for a in self.adapters if a.rank_space is not None]
        return sum(s == "high" for s in spaces) / len(spaces) if spaces else 0.0

    @property
    def mean_active_components(self) -> float:
        return sum(a.active_components for a in self.adapters) / len(self.adapters) if self.adapters else 0.0


@contextlib.contextmanager
def record_gates(model: nn.Module) -> Iterator[list[tuple[str, Gates]]]:
    """Collects (adapter name, Gates) for every gate evaluated inside the block, in forward order."""
    records: list[tuple[str, Gates]] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, GateVariant):
            adapter_name = name.removesuffix(".gate")
            handles.append(module.register_forward_hook(lambda _m, _i, out, n=adapter_name: records.append((n, out))))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def summarize_gates(records: list[tuple[str, Gates]]) -> list[GateSummary]:
    """One GateSummary per image of the batch the records were taken on."""
    if not records:
        return []
    num_images = records[0][1].coefficients.shape[0]
    summaries = []
    for i in range(num_images):
        adapters = []
        for name, gates in records:
            space = None if gates.rank_space is None else ("high" if gates.rank_space[i].item() > 0.5 else "low")
            active = int((gates.coefficients[i] != 0).sum().item())
            adapters.append(AdapterGates(adapter=name, rank_space=space, active_components=active))
        summaries.append(GateSummary(adapters=tuple(adapters)))
    return summaries
