"""The segmentation loss GaRA-SAM trains with: focal (weight 20) + dice (weight 1), as SAM."""

from __future__ import annotations

import torch
from torchvision.ops import sigmoid_focal_loss


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels, per mask: N x H x W -> N."""
    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="none").flatten(1).mean(1)


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - (2 |P T| + s) / (|P| + |T| + s) with soft P = sigmoid(logits), per mask: N x H x W -> N."""
    probs = torch.sigmoid(logits).flatten(1)
    targets = targets.flatten(1)
    return 1 - (2 * (probs * targets).sum(1) + smooth) / (probs.sum(1) + targets.sum(1) + smooth)


def segmentation_loss(
    logits: torch.Tensor, targets: torch.Tensor, focal_weight: float = 20.0, dice_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over masks of focal_weight * focal + dice_weight * dice; also the parts, for logging."""
    focal, dice = focal_loss(logits, targets).mean(), dice_loss(logits, targets).mean()
    total = focal_weight * focal + dice_weight * dice
    return total, {"loss": total.item(), "focal": focal.item(), "dice": dice.item()}
