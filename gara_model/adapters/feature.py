"""The gating feature f(x): what the gates of one adapted layer see of an image.

The paper leaves f(x) open. We pool the input that the adapted qkv projection itself sees, the block's normalised
input norm1(x), over every token of the image (before SAM's window partition), so that the gates make one decision
per image and layer. docs/model.md gives the measurements behind the choice.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class RunningStandardizer(nn.Module):
    """Per-dimension standardisation (f - mean) / sqrt(var + eps) with statistics of the training images.

    In training every batch updates the running mean and second moment, first as a cumulative average (the first
    batch sets them), then as an exponential average with `momentum`, so that the statistics follow the features
    as the adapters below change them; eval uses the stored statistics. Under torchrun the batch moments are averaged
    over the processes first, so N processes x batch B update them as one process x batch N * B. Buffers: saved in
    adapter files.
    """

    def __init__(self, dim: int, momentum: float = 0.01, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_square", torch.ones(dim))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature: B x D -> B x D."""
        if self.training:
            with torch.no_grad():
                moments = torch.stack([feature.mean(dim=0), feature.square().mean(dim=0)])  # 2 x D
                if dist.is_initialized() and dist.get_world_size() > 1:
                    dist.all_reduce(moments)
                    moments /= dist.get_world_size()
                weight = max(1.0 / (int(self.batches_seen) + 1), self.momentum)
                self.running_mean.lerp_(moments[0], weight)
                self.running_square.lerp_(moments[1], weight)
                self.batches_seen += 1
        variance = (self.running_square - self.running_mean.square()).clamp_min(0)
        return (feature - self.running_mean) * torch.rsqrt(variance + self.eps)


class GatingFeature(nn.Module):
    """f(x) of one layer: B x H x W x C normalised tokens -> B x F.

    kind "mean": the token mean (F = C); "mean_std": token mean and standard deviation (F = 2C), standardised by a
    `RunningStandardizer` so that differences between images are on the scale of one in every layer.
    """

    def __init__(self, dim: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.out_features = dim if kind == "mean" else 2 * dim
        self.standardizer = RunningStandardizer(self.out_features) if kind == "mean_std" else None

    def forward(self, normed: torch.Tensor) -> torch.Tensor:
        tokens = normed.flatten(1, 2).float()  # B x N x C; statistics in fp32 under autocast
        if self.standardizer is None:
            return tokens.mean(dim=1)
        std, mean = torch.std_mean(tokens, dim=1, correction=0)
        return self.standardizer(torch.cat([mean, std], dim=-1))
