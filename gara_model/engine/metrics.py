"""IoU and Dice of binary masks, per mask."""

from __future__ import annotations

import numpy as np


def iou_and_dice(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N x H x W bool each -> (IoU N, Dice N). Two empty masks agree perfectly (1.0)."""
    predicted, target = predicted.reshape(len(predicted), -1), target.reshape(len(target), -1)
    intersection = (predicted & target).sum(1).astype(np.float64)
    union = (predicted | target).sum(1).astype(np.float64)
    total = predicted.sum(1) + target.sum(1).astype(np.float64)
    iou = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    dice = np.where(total > 0, 2 * intersection / np.maximum(total, 1), 1.0)
    return iou, dice
