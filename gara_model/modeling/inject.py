"""Putting gated-rank adapters into a SAM model, and switching them: trainable, enabled, merged."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segment_anything.modeling import Sam
from torch import nn

from gara_model.adapters import GaraLinear, GatedRankAdapter
from gara_model.adapters.feature import GatingFeature
from gara_model.config import GaraConfig
from gara_model.modeling.basam import BiasModeMask
from gara_model.modeling.block import GaraBlock

# What an adapter file holds: the adapters (A, B and their gates), the gates' feature statistics and BA-SAM's bias
# coefficients, if any. All their parameters train; the feature statistics are buffers updated in training.
ADAPTER_PARTS = (GatedRankAdapter, GatingFeature, BiasModeMask)


def inject_adapters(sam: Sam, config: GaraConfig) -> Sam:
    """Replaces the configured image-encoder blocks by `GaraBlock`s in place; freezes everything but the adapters."""
    if adapter_layers(sam):
        raise ValueError("this SAM model already has GaRA adapters")
    blocks = sam.image_encoder.blocks
    indices = range(len(blocks)) if config.blocks is None else config.blocks
    for i in indices:
        if not 0 <= i < len(blocks):
            raise ValueError(f"blocks: index {i} is out of range for an image encoder with {len(blocks)} blocks")
        blocks[i] = GaraBlock(blocks[i], config).train(blocks[i].training)  # new gates follow the model's mode
    mark_only_adapters_trainable(sam)
    return sam


def adapter_layers(model: nn.Module) -> dict[str, GaraLinear]:
    """Every `GaraLinear` of the model by module name, in forward order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, GaraLinear)}


def gara_config(model: nn.Module) -> GaraConfig:
    """The adapter config the model was injected with; ValueError if it has no adapters."""
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("this model has no GaRA adapters (use inject_adapters or build_model)")
    return next(iter(layers.values())).config


def mark_only_adapters_trainable(model: nn.Module) -> None:
    """requires_grad only for parameters inside ADAPTER_PARTS; by structure, not name."""
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, ADAPTER_PARTS):
            module.requires_grad_(True)


def set_adapters_enabled(model: nn.Module, enabled: bool) -> None:
    """Disabled adapters are skipped entirely: the model then computes exactly the frozen SAM."""
    for layer in adapter_layers(model).values():
        layer.enabled = enabled


def set_merged_inference(model: nn.Module, merged: bool) -> None:
    """Whether single-image inference builds W0 + Delta W per image (merged) or adds B diag(c) A x (unmerged)."""
    for layer in adapter_layers(model).values():
        layer.merged_inference = merged


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def __str__(self) -> str:
        share = 100.0 * self.trainable / max(self.total, 1)
        return f"trainable {self.trainable:,} ({share:.2f}%), frozen {self.frozen:,}, total {self.total:,}"


def count_parameters(model: nn.Module) -> ParameterCount:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return ParameterCount(trainable=trainable, frozen=frozen)


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of ADAPTER_PARTS (A, B, gates, feature statistics, BA-SAM coefficients) by
    full name, sharing storage with the model: what an adapter file holds."""
    return {
        name: tensor
        for module_name, module in model.named_modules()
        if isinstance(module, ADAPTER_PARTS)
        for name, tensor in module.state_dict(prefix=f"{module_name}.", keep_vars=True).items()
    }
