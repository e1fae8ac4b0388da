"""SAM's image-encoder attention, with the fused qkv projection taking per-image gates."""

from __future__ import annotations

import torch
from segment_anything.modeling.image_encoder import Attention, add_decomposed_rel_pos
from torch import nn

from gara_model.adapters import GaraLinear, Gates


class GatedAttention(nn.Module):
    """Takes over a SAM `Attention`'s parameters; only `qkv` changes (a `GaraLinear` around the original)."""

    def __init__(self, attn: Attention, qkv: GaraLinear) -> None:
        super().__init__()
        self.num_heads = attn.num_heads
        self.scale = attn.scale
        self.qkv = qkv
        self.proj = attn.proj
        self.use_rel_pos = attn.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h = attn.rel_pos_h
            self.rel_pos_w = attn.rel_pos_w

    def forward(self, x: torch.Tensor, gates: dict[str, Gates] | None) -> torch.Tensor:
        """x: B x H x W x C (B counts windows in windowed blocks) -> B x H x W x C; same math as SAM."""
        B, H, W, _ = x.shape
        # qkv with shape (3, B, nHead, H * W, C)
        qkv = self.qkv(x, gates).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        # q, k, v with shape (B * nHead, H * W, C)
        q, k, v = qkv.reshape(3, B * self.num_heads, H * W, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            attn = add_decomposed_rel_pos(attn, q, self.rel_pos_h, self.rel_pos_w, (H, W), (H, W))
        attn = attn.softmax(dim=-1)
        x = (attn @ v).view(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)
