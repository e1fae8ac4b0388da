"""SAM's image-encoder attention restated: one fused SDPA call (or SAM's own math), BA-SAM optional, gated qkv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.image_encoder import Attention, add_decomposed_rel_pos, get_rel_pos
from torch import nn

from gara_model.adapters import GaraLinear, Gates

# "sdpa": F.scaled_dot_product_attention with the relative-position terms as an additive float mask, equal to SAM
# to float tolerance and measured 1.3-1.8x faster on CPU (docs/basam.md); "sam": SAM's own math, bit for bit.
ATTENTION_BACKENDS = ("sdpa", "sam")
DEFAULT_ATTENTION_BACKEND = "sdpa"


def rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, hw: tuple[int, int]
) -> torch.Tensor:
    """SAM's decomposed relative-position terms as one additive mask: q B x (H * W) x C -> B x (H * W) x (H * W).

    Entry (i, j) is q_i . R_h[h_i - h_j] + q_i . R_w[w_i - w_j], what `add_decomposed_rel_pos` adds to the logits;
    tables are interpolated by SAM's `get_rel_pos` when the grid differs from the one they were trained on.
    """
    H, W = hw
    B, N, _ = q.shape
    r_q = q.reshape(B, H, W, -1)
    # B x H x W x H and B x H x W x W, made contiguous so that the broadcast sum below is laid out as B x N x N
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, get_rel_pos(H, H, rel_pos_h)).contiguous()
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, get_rel_pos(W, W, rel_pos_w)).contiguous()
    return (rel_h[..., :, None] + rel_w[..., None, :]).view(B, N, N)


class EncoderAttention(nn.Module):
    """Takes over a SAM `Attention` (same parameters and state-dict names) and computes the same attention.

    backend: one of ATTENTION_BACKENDS. bias_mode: a `basam.BiasModeMask` (BA-SAM, global blocks only; installed by
    `basam.set_scaling`) or None for SAM.
    """

    def __init__(self, attn: Attention | EncoderAttention) -> None:
        super().__init__()
        self.num_heads = attn.num_heads
        self.scale = attn.scale
        self.qkv = attn.qkv
        self.proj = attn.proj
        self.use_rel_pos = attn.use_rel_pos
        if self.use_rel_pos:
            self.rel_pos_h = attn.rel_pos_h
            self.rel_pos_w = attn.rel_pos_w
        self.backend = getattr(attn, "backend", DEFAULT_ATTENTION_BACKEND)
        self.bias_mode = getattr(attn, "bias_mode", None)

    def project_qkv(self, x: torch.Tensor, gates: dict[str, Gates] | None) -> torch.Tensor:
        """x: B x H x W x C -> B x H x W x 3C."""
        return self.qkv(x)

    def forward(self, x: torch.Tensor, gates: dict[str, Gates] | None = None) -> torch.Tensor:
        """x: B x H x W x C (B counts windows in windowed blocks) -> B x H x W x C."""
        B, H, W, _ = x.shape
        # qkv with shape (3, B, nHead, H * W, C)
        qkv = self.project_qkv(x, gates).reshape(B, H * W, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        # q, k, v with shape (B * nHead, H * W, C)
        q, k, v = qkv.reshape(3, B * self.num_heads, H * W, -1).unbind(0)
        scale, bias = self.scale, None
        if self.bias_mode is not None:
            scale = self.scale * self.bias_mode.scale_factor(H * W)
            bias = self.bias_mode((H, W))  # (H * W) x (H * W)
        if self.backend == "sam":
            attn = (q * scale) @ k.transpose(-2, -1)
            if self.use_rel_pos:
                attn = add_decomposed_rel_pos(attn, q, self.rel_pos_h, self.rel_pos_w, (H, W), (H, W))
            if bias is not None:
                attn = attn + bias
            x = attn.softmax(dim=-1) @ v
        else:
            mask = bias
            if self.use_rel_pos:
                mask = rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (H, W))
                if bias is not None:
                    mask = mask.add_(bias)  # a fresh tensor: adding in place saves a (B * nHead) x N x N copy
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        x = x.reshape(B, self.num_heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)  # reshape: traced SDPA may return another layout
        return self.proj(x)


class GatedAttention(EncoderAttention):
    """An `EncoderAttention` whose fused qkv is a `GaraLinear` around the original, taking per-image gates."""

    def __init__(self, attn: Attention | EncoderAttention, qkv: GaraLinear) -> None:
        super().__init__(attn)
        self.qkv = qkv

    def project_qkv(self, x: torch.Tensor, gates: dict[str, Gates] | None) -> torch.Tensor:
        return self.qkv(x, gates)


def set_attention_backend(model: nn.Module, backend: str) -> None:
    """Every `EncoderAttention` of the model computes with `backend` ("sdpa" or "sam"); SAM's own blocks stay SAM."""
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    for module in model.modules():
        if isinstance(module, EncoderAttention):
            module.backend = backend
