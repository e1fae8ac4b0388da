"""Adapter configuration, saved as JSON inside every adapter file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

PROJECTIONS = ("q", "k", "v")


@dataclass(frozen=True)
class GaraConfig:
    """What kind of adapter is put on each q/k/v projection of SAM's image encoder."""

    variant: str = field(
        default="gara",
        metadata={"help": "gara (both gates, paper sec. 3.3) | gara_unified (w/o gating 1) | lora (fixed rank)"},
    )
    ranks: tuple[int, ...] = field(
        default=(16, 256),
        metadata={"help": "(r_L, r_H) for gara; (r,) for gara_unified and lora"},
    )
    tau: float = field(default=0.5, metadata={"help": "Gumbel-Sigmoid temperature of both gates"})
    gate_hidden_dim: int = field(default=64, metadata={"help": "hidden width of the gating MLPs"})
    projections: tuple[str, ...] = field(default=PROJECTIONS, metadata={"help": "which of q, k, v to adapt"})
    blocks: tuple[int, ...] | None = field(
        default=None, metadata={"help": "image-encoder block indices to adapt; None = every block"}
    )

    def __post_init__(self) -> None:
        from gara_model.adapters.variants import VARIANTS

        object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        object.__setattr__(self, "projections", tuple(self.projections))
        if self.blocks is not None:
            object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {self.variant!r}")
        expected = VARIANTS[self.variant].num_rank_sets
        if len(self.ranks) != expected or any(r <= 0 for r in self.ranks):
            raise ValueError(f"ranks for variant {self.variant!r} must be {expected} positive integer(s), got {self.ranks}")
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if self.gate_hidden_dim <= 0:
            raise ValueError(f"gate_hidden_dim must be positive, got {self.gate_hidden_dim}")
        if not self.projections or set(self.projections) - set(PROJECTIONS) or len(set(self.projections)) != len(self.projections):
            raise ValueError(f"projections must be distinct names from {PROJECTIONS}, got {self.projections}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "GaraConfig":
        values = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown GaraConfig fields {sorted(unknown)}")
        return cls(**values)
