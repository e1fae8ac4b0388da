"""Gate variants: how the per-image coefficients c of Delta W = B diag(c) A are chosen.

One table, `VARIANTS`, maps `GaraConfig.variant` to a class; the adapter layer is shared by all of them. The number
of rank sets each variant takes is part of the adapter file's schema (`config.VARIANT_RANK_SETS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gara_model.adapters.gumbel import binary_gate, one_hot_gate


@dataclass
class Gates:
    """Per-image gate decisions of one adapter (B images, r = sum of the rank sets' sizes, S rank sets).

    coefficients:    B x r, the c in Delta W = B diag(c) A.
    rank_set:        B, index of the rank set in use (GaRA: z_space, 0 = lower, 1 = higher; MoE LoRA: the block);
                     None for variants with a single set.
    components:      B x r, the component gates z = [z^L, z^H] before rank-set selection; None without gating 2.
    rank_set_logits: B x 1 (GaRA's gating 1) or B x S (MoE LoRA's router); None without a rank-set gate.
    component_logits: B x r logits of the component gates; None without gating 2.
    num_rank_sets:   S, how many rank sets `rank_set` chooses among (1: a single set).
    """

    coefficients: torch.Tensor
    rank_set: torch.Tensor | None = None
    components: torch.Tensor | None = None
    rank_set_logits: torch.Tensor | None = None
    component_logits: torch.Tensor | None = None
    num_rank_sets: int = 1


def gate_mlp(in_features: int, hidden: int, out_features: int, num_layers: int) -> nn.Sequential:
    """Linear-ReLU stack with `num_layers` linear layers, ending in raw logits."""
    widths = [in_features] + [hidden] * (num_layers - 1) + [out_features]
    layers: list[nn.Module] = []
    for i in range(num_layers):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < num_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# "open" gate initialisation: the logit every component gate starts at (on in eval; on with probability
# 1 - exp(-e) = 0.93 under training's Gumbel noise).
OPEN_COMPONENT_LOGIT = 1.0


def start_at(mlp: nn.Sequential, logit: float) -> None:
    """The MLP's last layer gives `logit` for every input: zero weights, bias `logit`."""
    with torch.no_grad():
        mlp[-1].weight.zero_()
        mlp[-1].bias.fill_(logit)


class GateVariant(nn.Module):
    """Maps the gating feature f(x) (B x F) to `Gates`; subclasses fix how, and what `open_gates` starts them at."""

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__()
        self.ranks = ranks
        self.tau = tau

    def binarize(self, logits: torch.Tensor) -> torch.Tensor:
        return binary_gate(logits, self.tau, self.training)

    def open_gates(self) -> None:
        """The "open" initialisation: every input gets the same decisions at first (components on, rank sets even)."""


class FixedRank(GateVariant):
    """Plain LoRA: every component always on (c = 1), no gates."""

    def forward(self, feature: torch.Tensor) -> Gates:
        return Gates(coefficients=feature.new_ones(feature.shape[0], self.ranks[0]))


class ComponentGated(GateVariant):
    """GaRA without gating 1: one rank set whose components are switched by a three-layer MLP."""

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__(in_features, ranks, hidden, tau)
        self.component_gate = gate_mlp(in_features, hidden, ranks[0], num_layers=3)

    def open_gates(self) -> None:
        start_at(self.component_gate, OPEN_COMPONENT_LOGIT)

    def forward(self, feature: torch.Tensor) -> Gates:
        logits = self.component_gate(feature)
        z = self.binarize(logits)
        return Gates(coefficients=z, components=z, component_logits=logits)


class GatedRank(GateVariant):
    """Full GaRA (paper sec. 3.3): gating 1 picks the lower- or higher-rank set, gating 2 its components.

    c = [(1 - z_space) z^L, z_space z^H], so Delta W = (1 - z_space) B^L diag(z^L) A^L + z_space B^H diag(z^H) A^H.
    """

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__(in_features, ranks, hidden, tau)
        self.rank_space_gate = gate_mlp(in_features, hidden, 1, num_layers=2)
        self.component_gates = nn.ModuleList(gate_mlp(in_features, hidden, r, num_layers=3) for r in ranks)

    def open_gates(self) -> None:
        start_at(self.rank_space_gate, 0.0)
        for gate in self.component_gates:
            start_at(gate, OPEN_COMPONENT_LOGIT)

    def forward(self, feature: torch.Tensor) -> Gates:
        space_logit = self.rank_space_gate(feature)  # B x 1
        space = self.binarize(space_logit)
        component_logits = torch.cat([gate(feature) for gate in self.component_gates], dim=-1)  # B x (r_L + r_H)
        z = self.binarize(component_logits)
        z_low, z_high = z.split(list(self.ranks), dim=-1)
        coefficients = torch.cat([(1 - space) * z_low, space * z_high], dim=-1)
        return Gates(coefficients=coefficients, rank_set=space.squeeze(-1), components=z,
                     rank_set_logits=space_logit, component_logits=component_logits, num_rank_sets=2)


class MixtureOfLoRA(GateVariant):
    """MoE LoRA (the paper's table 6 baseline): S fixed-rank LoRA blocks and one gating module (a two-layer MLP
    router) that picks exactly one block per input; c is 1 on the chosen block's components, 0 elsewhere.

    Training: Gumbel-softmax with a straight-through one-hot choice (`one_hot_gate`); eval: the router's argmax.
    """

    def __init__(self, in_features: int, ranks: tuple[int, ...], hidden: int, tau: float) -> None:
        super().__init__(in_features, ranks, hidden, tau)
        self.router = gate_mlp(in_features, hidden, len(ranks), num_layers=2)
        # S x r, 1 where component j belongs to block s: c = choice @ membership repeats each block's choice over its
        # components (a matmul rather than repeat_interleave, which the ONNX export cannot take)
        membership = torch.block_diag(*(torch.ones(1, r) for r in ranks))
        self.register_buffer("membership", membership, persistent=False)

    def open_gates(self) -> None:
        start_at(self.router, 0.0)

    def forward(self, feature: torch.Tensor) -> Gates:
        logits = self.router(feature)  # B x S
        choice = one_hot_gate(logits, self.tau, self.training)
        coefficients = choice @ self.membership
        return Gates(coefficients=coefficients, rank_set=choice.argmax(dim=-1).to(choice.dtype), rank_set_logits=logits,
                     num_rank_sets=len(self.ranks))


VARIANTS: dict[str, type[GateVariant]] = {
    "gara": GatedRank,
    "gara_unified": ComponentGated,
    "lora": FixedRank,
    "moe_lora": MixtureOfLoRA,
}
