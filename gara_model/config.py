"""Adapter configuration (the adapter file's schema), saved as JSON inside every adapter file. No imports from the
layers that use it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

PROJECTIONS = ("q", "k", "v")

# variant -> (fewest, most) rank sets its `ranks` lists (None: no upper bound). The gate of each variant is in
# gara_model/adapters/variants.py (VARIANTS, same keys).
VARIANT_RANK_SETS: dict[str, tuple[int, int | None]] = {
    "gara": (2, 2),
    "gara_unified": (1, 1),
    "lora": (1, 1),
    "moe_lora": (2, None),
}

# How the gates see an image: the block's normalised input norm1(x) pooled over all its tokens (docs/model.md).
GATING_FEATURES = ("mean", "mean_std")
# How the gate MLPs start: "pytorch" (nn.Linear's default initialisation, the paper's text gives no other) or "open"
# (last layers zero, component gates open: every image starts with the same decisions, all components on).
GATE_INITS = ("pytorch", "open")


@dataclass(frozen=True)
class GaraConfig:
    """What kind of adapter is put on each q/k/v projection of SAM's image encoder."""

    variant: str = field(
        default="gara",
        metadata={"help": "gara (both gates, paper sec. 3.3) | gara_unified (w/o gating 1) | lora (fixed rank) | "
                          "moe_lora (one of several LoRA blocks per input, table 6)"},
    )
    ranks: tuple[int, ...] = field(
        default=(16, 256),
        metadata={"help": "(r_L, r_H) for gara; (r,) for gara_unified and lora; (r_1, ..., r_S) blocks for moe_lora"},
    )
    tau: float = field(default=0.5, metadata={"help": "Gumbel-Sigmoid temperature of the gates"})
    gate_hidden_dim: int = field(default=64, metadata={"help": "hidden width of the gating MLPs"})
    gating_feature: str = field(
        default="mean_std",
        metadata={"help": "f(x), the paper leaves it open: mean (the token mean of norm1(x)) | mean_std (token mean and "
                          "standard deviation, standardised with running statistics of the training images)"},
    )
    gate_init: str = field(default="pytorch", metadata={"help": "how the gate MLPs start: pytorch | open (docs/model.md)"})
    projections: tuple[str, ...] = field(default=PROJECTIONS, metadata={"help": "which of q, k, v to adapt"})
    blocks: tuple[int, ...] | None = field(
        default=None, metadata={"help": "image-encoder block indices to adapt; None = every block"}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranks", tuple(int(r) for r in self.ranks))
        object.__setattr__(self, "projections", tuple(self.projections))
        if self.blocks is not None:
            object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if self.variant not in VARIANT_RANK_SETS:
            raise ValueError(f"variant must be one of {sorted(VARIANT_RANK_SETS)}, got {self.variant!r}")
        fewest, most = VARIANT_RANK_SETS[self.variant]
        count = f"{fewest}" if fewest == most else f"at least {fewest}" if most is None else f"{fewest} to {most}"
        if not fewest <= len(self.ranks) <= (most or len(self.ranks)) or any(r <= 0 for r in self.ranks):
            raise ValueError(f"ranks for variant {self.variant!r} must be {count} positive integer(s), got {self.ranks}")
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, got {self.tau}")
        if self.gate_hidden_dim <= 0:
            raise ValueError(f"gate_hidden_dim must be positive, got {self.gate_hidden_dim}")
        if self.gating_feature not in GATING_FEATURES:
            raise ValueError(f"gating_feature must be one of {GATING_FEATURES}, got {self.gating_feature!r}")
        if self.gate_init not in GATE_INITS:
            raise ValueError(f"gate_init must be one of {GATE_INITS}, got {self.gate_init!r}")
        if not self.projections or set(self.projections) - set(PROJECTIONS) or len(set(self.projections)) != len(self.projections):
            raise ValueError(f"projections must be distinct names from {PROJECTIONS}, got {self.projections}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, absent: dict | None = None) -> "GaraConfig":
        """The config written by `to_json`; `absent` gives values for fields an older file does not have."""
        values = {**(absent or {}), **json.loads(text)}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown GaraConfig fields {sorted(unknown)}")
        return cls(**values)
