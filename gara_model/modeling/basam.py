"""BA-SAM (Song et al., CVPR 2024, arXiv 2401.02317): global attention that extrapolates to other token counts,
and its installation in (or removal from) a SAM or GaRA-SAM image encoder."""

from __future__ import annotations

import math

import torch
from segment_anything.modeling import Sam
from torch import nn

from gara_model.modeling.attention import EncoderAttention

SCALINGS = ("none", "basam")


def token_distances(hw: tuple[int, int], device: torch.device | None = None) -> torch.Tensor:
    """Euclidean distance between the tokens of an H x W grid, in tokens: (H * W) x (H * W), row-major order."""
    H, W = hw
    ys, xs = torch.meshgrid(torch.arange(H, device=device), torch.arange(W, device=device), indexing="ij")
    coords = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1).float()  # (H * W) x 2
    return torch.cdist(coords, coords)


class BiasModeMask(nn.Module):
    """BA-SAM's two parts for one global-attention block: the length-aware scale and a learnable distance penalty.

    - scale = head_dim^-0.5 * log_{N_train}(N), N the block's token count now and N_train its native one
      (64 x 64 = 4096 for SAM at 1024): the softmax input keeps its magnitude when the token count changes, and the
      factor is exactly 1.0 at the native size.
    - the bias-mode mask adds -coefficient * d(i, j) to the logits, d the distance of query and key on the token
      grid, so that each token favours its neighbours over distant, untrained-for positions. SAM's own
      relative-position terms stay as they are; the coefficient (init 0.1) is trained with the adapters.
    """

    def __init__(self, native_tokens: int, coefficient: float = 0.1) -> None:
        super().__init__()
        if native_tokens < 2:
            raise ValueError(f"native_tokens must be at least 2 (log base), got {native_tokens}")
        self.native_tokens = native_tokens
        self.coefficient = nn.Parameter(torch.tensor(float(coefficient)))

    def scale_factor(self, tokens: int) -> float:
        """log_{N_train}(N): 1.0 at the native token count, < 1 for fewer tokens, > 1 for more."""
        return math.log(tokens) / math.log(self.native_tokens)

    def forward(self, hw: tuple[int, int]) -> torch.Tensor:
        """The additive mask for an H x W token grid: (H * W) x (H * W), 0 on the diagonal, falling with distance."""
        return -self.coefficient * token_distances(hw, self.coefficient.device)


def set_scaling(sam: Sam, scaling: str) -> Sam:
    """Gives every global-attention block of `sam` (plain or GaRA-SAM) BA-SAM's attention ("basam") or SAM's ("none"),
    in place; windowed blocks keep their token count at every image size and stay as they are.

    "basam" keeps a block's `BiasModeMask` where it has one (a trained coefficient stays) and adds a fresh one
    elsewhere, for the encoder's native token count (its positional embedding's grid). A fresh coefficient
    trains, as every adapter part does (`mark_only_adapters_trainable`). "none" removes them.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    encoder = sam.image_encoder
    if encoder.pos_embed is None:
        raise ValueError("sam: BA-SAM needs an image encoder with an absolute positional embedding (SAM's)")
    native_tokens = encoder.pos_embed.shape[1] * encoder.pos_embed.shape[2]  # pos_embed: 1 x H x W x C
    for block in encoder.blocks:
        if block.window_size > 0:
            continue
        if scaling == "none":
            if isinstance(block.attn, EncoderAttention):
                block.attn.bias_mode = None
            continue
        if not isinstance(block.attn, EncoderAttention):
            block.attn = EncoderAttention(block.attn).train(block.training)
        if block.attn.bias_mode is None:
            block.attn.bias_mode = BiasModeMask(native_tokens).to(encoder.pos_embed.device).train(block.training)
    return sam


def model_scaling(sam: nn.Module) -> str:
    """"basam" if any block of `sam` has BA-SAM's attention, else "none"."""
    return "basam" if any(isinstance(m, BiasModeMask) for m in sam.modules()) else "none"
