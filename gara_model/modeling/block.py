"""SAM's image-encoder block with gated-rank adapters on q, k and v, gated once per image."""

from __future__ import annotations

import torch
from segment_anything.modeling.image_encoder import Block, window_partition, window_unpartition
from torch import nn

from gara_model.adapters import GaraLinear
from gara_model.config import GaraConfig
from gara_model.modeling.attention import GatedAttention


class GaraBlock(nn.Module):
    """Takes over a SAM `Block`: same norm1/attn/norm2/mlp modules and state-dict names, adapted qkv.

    The gates read the whole image's normalised tokens before SAM's window partition (one decision per image and
    layer, `gara_model.adapters.feature`).
    """

    def __init__(self, block: Block, config: GaraConfig) -> None:
        super().__init__()
        self.norm1 = block.norm1
        self.attn = GatedAttention(block.attn, GaraLinear(block.attn.qkv, config))
        self.norm2 = block.norm2
        self.mlp = block.mlp
        self.window_size = block.window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B x H x W x C -> B x H x W x C."""
        shortcut = x
        x = self.norm1(x)
        qkv = self.attn.qkv
        gates = qkv.gate(x) if qkv.enabled else None
        if self.window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window_size)  # (B * windows) x ws x ws x C, grouped by image
        x = self.attn(x, gates)
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))
