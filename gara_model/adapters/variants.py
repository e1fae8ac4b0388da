"""Gate variants: how the per-image coefficients c of Delta W = B diag(c) A are chosen.

One table, `VARIANTS`, maps `GaraConfig.variant` to a class; the adapter layer is shared by all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gara_model.adapters.gumbel import binary_gate


@dataclass
class Gates:
    """Per-image gate decisions of one adapter.

    coefficients: B x r, the c in Delta W = B diag(c) A (r = sum of the rank sets' sizes).
    rank_space:   B, z_space in {0, 1} (1 = higher-rank set); None for variants without gating 1.
    components:   B x r, the component gates z = [z^L, z^H] before rank-space selection; None without gating 2.
    """

    coefficients: torch.Tensor
    rank_space: torch.Tensor | None = None
    components: torch.Tensor | None = None


def gate_mlp(in_features: int, hidden: int, out_features: int, num_layers: int) -> nn.Sequential:
    """Linear-ReLU stack with `num_layers` linear layers, ending in raw logits."""
    widths = [in_features] + [hidden] * (num_layers - 1) + [out_features]
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < num_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class GateVariant(nn.Module):
    """Maps the gating feature f(x) (B x K) to `Gates`; subclasses fix how."""

    num_rank_sets: ClassVar[int]

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__()
        self.ranks = ranks
        self.tau = tau

    def binarize(self, logits: torch.Tensor) -> torch.Tensor:
        return binary_gate(logits, self.tau, self.training)


class FixedRank(GateVariant):
    """Plain LoRA: every component always on (c = 1), no gates."""

    num_rank_sets = 1

    def forward(self, feature: torch.Tensor) -> Gates:
        return Gates(coefficients=feature.new_ones(feature.shape[0], self.ranks[0]))


class ComponentGated(GateVariant):
    """GaRA without gating 1: one rank set whose components are switched by a three-layer MLP."""

    num_rank_sets = 1

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__(in_features, ranks, hidden, tau)
        self.component_gate = gate_mlp(in_features, hidden, ranks[0], num_layers=3)

    def forward(self, feature: torch.Tensor) -> Gates:
        z = self.binarize(self.component_gate(feature))
        return Gates(coefficients=z, components=z)


class GatedRank(GateVariant):
    """Full GaRA (paper sec. 3.3): gating 1 picks the lower- or higher-rank set, gating 2 its components.

    c = [(1 - z_space) z^L, z_space z^H], so Delta W = (1 - z_space) B^L diag(z^L) A^L + z_space B^H diag(z^H) A^H.
    """

    num_rank_sets = 2

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__(in_features, ranks, hidden, tau)
        self.rank_space_gate = gate_mlp(in_features, hidden, 1, num_layers=2)
        self.component_gates = nn.ModuleList(gate_mlp(in_features, hidden, r, num_layers=3) for r in ranks)

    def forward(self, feature: torch.Tensor) -> Gates:
        space = self.binarize(self.rank_space_gate(feature))  # B x 1
        z_low, z_high = (self.binarize(gate(feature)) for gate in self.component_gates)
        coefficients = torch.cat([(1 - space) * z_low, space * z_high], dim=-1)
        return Gates(coefficients=coefficients, rank_space=space.squeeze(-1), components=torch.cat([z_low, z_high], dim=-1))


VARIANTS: dict[str, type[GateVariant]] = {
    "gara": GatedRank,
    "gara_unified": ComponentGated,
    "lora": FixedRank,
}
