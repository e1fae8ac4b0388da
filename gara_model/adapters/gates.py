"""Which rank set and which components each adapter used for an image (the paper's figure 6), as data.

`record_gates` collects the `Gates` of every adapter during a forward pass; `summarize_gates` turns them into one
`GateSummary` per image with a single device-to-host transfer, through one table of all decisions (`gate_table`,
which the exported ONNX encoder outputs too, and `summaries_from_table`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from gara_model.adapters.variants import GateVariant, Gates


@dataclass(frozen=True, eq=False)
class AdapterGates:
    """One adapter's decision for one image.

    rank_set: index of the rank set in use (GaRA: 0 lower, 1 higher; MoE LoRA: the block) among `num_rank_sets`,
    None for single-set variants; components: r bool, which rank-1 components are on (the non-zero coefficients c_i).
    """

    adapter: str
    rank_set: int | None
    num_rank_sets: int
    components: np.ndarray

    @property
    def active_components(self) -> int:
        return int(self.components.sum())

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, AdapterGates)
                and (self.adapter, self.rank_set, self.num_rank_sets) == (other.adapter, other.rank_set, other.num_rank_sets)
                and np.array_equal(self.components, other.components))


@dataclass(frozen=True)
class GateSummary:
    """Every adapter's decision for one image, in forward order."""

    adapters: tuple[AdapterGates, ...]

    @property
    def high_rank_share(self) -> float:
        """Share of the gated adapters that use rank set 1 (GaRA's higher-rank set); 0.0 without gating 1."""
        sets = [a.rank_set for a in self.adapters if a.rank_set is not None]
        return sum(s == 1 for s in sets) / len(sets) if sets else 0.0

    @property
    def mean_active_components(self) -> float:
        return sum(a.active_components for a in self.adapters) / len(self.adapters) if self.adapters else 0.0

    @property
    def decisions(self) -> np.ndarray:
        """All binary decisions of the image as one bool vector: per adapter, its rank set (one bit per set beyond
        the first, one-hot) and its components on/off."""
        parts = []
        for a in self.adapters:
            if a.rank_set is not None:
                parts.append(np.arange(1, a.num_rank_sets) == a.rank_set)
            parts.append(a.components)
        return np.concatenate(parts) if parts else np.zeros(0, bool)

    @property
    def layout(self) -> tuple[tuple[str, int, int], ...]:
        """Per adapter, in `decisions` order: (name, rank-set bits, components)."""
        return tuple((a.adapter, a.num_rank_sets - 1 if a.rank_set is not None else 0, a.components.size)
                     for a in self.adapters)


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


# Per adapter of a gate table, in forward order: (adapter name, number of rank sets, components r).
GateColumns = tuple[tuple[str, int, int], ...]


def gate_columns(records: list[tuple[str, Gates]]) -> GateColumns:
    """How `gate_table(records)` splits into adapters."""
    return tuple((name, gates.num_rank_sets, gates.coefficients.shape[1]) for name, gates in records)


def gate_table(records: list[tuple[str, Gates]]) -> torch.Tensor:
    """Every decision of a batch as one tensor, B x sum(1 + r): per adapter (`gate_columns`), its rank set (-1 for a
    single-set variant), then its components, 1.0 on and 0.0 off. Traceable: the ONNX encoder outputs it."""
    columns = []
    for _, gates in records:
        rank_set = gates.rank_set if gates.rank_set is not None else torch.full_like(gates.coefficients[:, 0], -1)
        columns += [rank_set.detach()[:, None].float(), (gates.coefficients.detach() != 0).float()]
    return torch.cat(columns, dim=1)


def summaries_from_table(table: np.ndarray, columns: GateColumns) -> list[GateSummary]:
    """One GateSummary per row of a `gate_table` (B x sum(1 + r), on the host) laid out as `columns`."""
    summaries = []
    for row in table:
        adapters, start = [], 0
        for name, num_rank_sets, rank in columns:
            rank_set = int(row[start])
            components = row[start + 1 : start + 1 + rank] > 0.5
            adapters.append(AdapterGates(name, None if rank_set < 0 else rank_set, num_rank_sets, components))
            start += 1 + rank
        summaries.append(GateSummary(tuple(adapters)))
    return summaries


def summarize_gates(records: list[tuple[str, Gates]]) -> list[GateSummary]:
    """One GateSummary per image of the batch the records were taken on; one device-to-host transfer."""
    if not records:
        return []
    return summaries_from_table(gate_table(records).cpu().numpy(), gate_columns(records))
