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


def iou_prediction_loss(predicted_iou: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SAM's IoU-head loss: MSE between the predicted IoU (N) and the IoU of the thresholded mask, per mask -> N."""
    masks = (logits > 0).flatten(1)
    targets = targets.flatten(1) > 0.5
    union = (masks | targets).sum(1)
    actual = torch.where(union > 0, (masks & targets).sum(1) / union.clamp(min=1), torch.ones_like(union, dtype=torch.float))
    return (predicted_iou - actual.detach()) ** 2


def segmentation_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    focal_weight: float = 20.0,
    dice_weight: float = 1.0,
    predicted_iou: torch.Tensor | None = None,
    iou_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over masks of focal_weight * focal + dice_weight * dice (GaRA's loss), plus iou_weight times SAM's
    IoU-head loss when `predicted_iou` (N) is given; also the parts, for logging."""
    focal, dice = focal_loss(logits, targets).mean(), dice_loss(logits, targets).mean()
    total = focal_weight * focal + dice_weight * dice
    parts = {"focal": focal.item(), "dice": dice.item()}
    if iou_weight:
        iou = iou_prediction_loss(predicted_iou, logits, targets).mean()
        total = total + iou_weight * iou
        parts["iou_mse"] = iou.item()
    return total, {"loss": total.item(), **parts}
