"""The gated-rank adapter layer that wraps SAM's fused qkv projection (peft-style `base_layer`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gara_model.adapters.feature import GatingFeature
from gara_model.adapters.variants import VARIANTS, Gates
from gara_model.config import PROJECTIONS, GaraConfig


class GatedRankAdapter(nn.Module):
    """Rank-1 components b_i a_i^T for one D x K projection, plus the gate that switches them per image.

    lora_A: r x K (rows a_i^T), lora_B: D x r (columns b_i), r = sum(config.ranks); the first r_L components
    form the lower-rank set, the rest the higher-rank set. lora_B starts at zero, so a fresh adapter is a no-op.
    feature_dim: the width F of the gating feature f(x) the gate reads.
    """

    def __init__(self, in_features: int, out_features: int, config: GaraConfig, feature_dim: int) -> None:
        super().__init__()
        rank = sum(config.ranks)
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.gate = VARIANTS[config.variant](feature_dim, config.ranks, config.gate_hidden_dim, config.tau)
        if config.gate_init == "open":
            self.gate.open_gates()

    def delta_weight(self, coefficients: torch.Tensor, fixed_shapes: bool = False) -> torch.Tensor:
        """Delta W = B diag(c) A for each image: coefficients B x r -> B x D x K.

        For one image only the components the gates switched on are summed (the other rank set is all zero), unless
        `fixed_shapes`: then all r of them, the off ones times zero, so that no shape depends on the gates (what a
        traced graph needs).
        """
        if coefficients.shape[0] == 1 and not fixed_shapes:
            active = coefficients[0].nonzero().squeeze(1)
            return ((self.lora_B[:, active] * coefficients[0, active]) @ self.lora_A[active])[None]
        return (self.lora_B * coefficients[:, None, :]) @ self.lora_A

    def delta(self, x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        """Delta W x without forming Delta W: x B x N x K, coefficients B x r -> B x N x D."""
        return ((x @ self.lora_A.T) * coefficients[:, None, :]) @ self.lora_B.T


class GaraLinear(nn.Module):
    """SAM's fused qkv `nn.Linear` (3C x C, output rows [q | k | v]) with one gated-rank adapter per projection.

    The frozen `base_layer` is never modified. Two equal paths compute W0 x + Delta W(gates) x:
    - unmerged (training, or several images): base_layer(x) + B diag(c) A x;
    - merged (inference on one image): a single linear call with W0 + `delta_weight(gates)` for that image.
    """

    def __init__(self, base_layer: nn.Linear, config: GaraConfig) -> None:
        super().__init__()
        dim = base_layer.in_features
        if base_layer.out_features != len(PROJECTIONS) * dim:
            raise ValueError(f"base_layer must be a fused qkv Linear ({3 * dim} x {dim}), got {tuple(base_layer.weight.shape)}")
        self.base_layer = base_layer
        self.config = config
        self.feature = GatingFeature(dim, config.gating_feature)
        self.adapters = nn.ModuleDict(
            {name: GatedRankAdapter(dim, dim, config, self.feature.out_features) for name in config.projections})
        self.enabled = True
        self.merged_inference = True

    def gate(self, normed: torch.Tensor) -> dict[str, Gates]:
        """Per-image gates of every adapted projection from the block's normalised input, B x H x W x C."""
        feature = self.feature(normed)  # B x F
        return {name: adapter.gate(feature) for name, adapter in self.adapters.items()}

    def delta_weight(self, gates: dict[str, Gates]) -> torch.Tensor:
        """The qkv weight update Delta W(gates) for each image: B x 3C x C (zero rows for projections without an
        adapter). The one place Delta W is formed; ValueError when it is not finite (as peft's safe merge).

        Traced (torch.compile, torch.export and so the ONNX export) it is the same sum over all components with
        fixed shapes, and without the finiteness check, whose host round trip a graph cannot hold (the exporter
        checks the adapter weights once instead).
        """
        traced = torch.compiler.is_compiling() or torch.jit.is_tracing()
        dim = self.base_layer.in_features
        num_images = next(iter(gates.values())).coefficients.shape[0]
        delta = torch.cat([  # rows [q | k | v], concatenated rather than assigned: a plain Concat in a graph
            self.adapters[name].delta_weight(gates[name].coefficients, fixed_shapes=traced) if name in self.adapters
            else self.base_layer.weight.new_zeros(num_images, dim, dim)
            for name in PROJECTIONS], dim=1)
        if not traced and not torch.isfinite(delta).all():
            raise ValueError("the adapter's weight update Delta W is not finite (NaN or inf adapter weights, or an "
                             "overflow in reduced precision)")
        return delta

    def forward(self, x: torch.Tensor, gates: dict[str, Gates] | None) -> torch.Tensor:
        """x: (B * windows) x ... x C, grouped by image as SAM's window_partition leaves it -> ... x 3C."""
        if not self.enabled or gates is None:
            return self.base_layer(x)
        num_images = next(iter(gates.values())).coefficients.shape[0]
        if num_images == 1 and self.merged_inference and not self.training:
            # W0 + Delta W for this image; W0 itself is never touched
            return F.linear(x, self.base_layer.weight + self.delta_weight(gates)[0], self.base_layer.bias)
        out = self.base_layer(x)
        per_image_in = x.reshape(num_images, -1, x.shape[-1])  # B x N x C, all windows of an image together
        per_image_out = out.view(num_images, -1, out.shape[-1])  # B x N x 3C, a view of out
        for rows, name in self._adapted_rows():
            per_image_out[..., rows] += self.adapters[name].delta(per_image_in, gates[name].coefficients)
        return out

    def _adapted_rows(self):
        """(slice of qkv output rows, projection name) for every adapted projection."""
        dim = self.base_layer.in_features
        for i, name in enumerate(PROJECTIONS):
            if name in self.adapters:
                yield slice(i * dim, (i + 1) * dim), name
