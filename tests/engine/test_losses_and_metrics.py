"""Loss and metric values against hand-computed ones."""

import math

import numpy as np
import pytest
import torch

from gara_model.engine.losses import dice_loss, focal_loss, segmentation_loss
from gara_model.engine.metrics import iou_and_dice


def test_focal_loss_matches_the_formula():
    logits = torch.tensor([[[2.0, -1.0]]])
    targets = torch.tensor([[[1.0, 1.0]]])
    # FL = -alpha (1 - p)^gamma log p for positives, alpha = 0.25, gamma = 2
    expected = [0.25 * (1 - p) ** 2 * -math.log(p) for p in (1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0)))]
    assert focal_loss(logits, targets).item() == pytest.approx(sum(expected) / 2, rel=1e-5)


def test_dice_loss_matches_the_formula():
    logits = torch.tensor([[[0.0, 100.0, -100.0]]])  # p = 0.5, 1, 0
    targets = torch.tensor([[[1.0, 1.0, 0.0]]])
    expected = 1 - (2 * 1.5 + 1) / (1.5 + 2 + 1)
    assert dice_loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_total_is_20_focal_plus_1_dice_averaged_over_masks():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 8, 8), (torch.rand(3, 8, 8) > 0.5).float()
    total, parts = segmentation_loss(logits, targets)
    focal, dice = focal_loss(logits, targets).mean().item(), dice_loss(logits, targets).mean().item()
    assert total.item() == pytest.approx(20 * focal + dice, rel=1e-6)
    assert parts == pytest.approx({"loss": 20 * focal + dice, "focal": focal, "dice": dice}, rel=1e-6)


def test_iou_and_dice_known_answers():
    target = np.zeros((3, 4, 4), bool)
    target[:, :2, :2] = True  # 4 pixels each
    predicted = np.stack([target[0], np.zeros((4, 4), bool), np.ones((4, 4), bool)])
    iou, dice = iou_and_dice(predicted, target)
    assert iou.tolist() == [1.0, 0.0, 0.25]
    assert dice.tolist() == pytest.approx([1.0, 0.0, 2 * 4 / (16 + 4)])
    both_empty = np.zeros((1, 4, 4), bool)
    assert iou_and_dice(both_empty, both_empty)[0].tolist() == [1.0]


def test_iou_prediction_loss_is_mse_to_the_actual_iou():
    from gara_model.engine.losses import iou_prediction_loss

    logits = torch.tensor([[[5.0, 5.0, -5.0, -5.0]], [[-5.0, -5.0, -5.0, -5.0]]])
    targets = torch.tensor([[[1.0, 0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]])
    predicted = torch.tensor([0.2, 0.9])
    # mask 0: IoU 1/2; mask 1: both empty, IoU 1
    assert iou_prediction_loss(predicted, logits, targets).tolist() == pytest.approx([(0.2 - 0.5) ** 2, (0.9 - 1.0) ** 2])
    total, parts = segmentation_loss(logits, targets, predicted_iou=predicted, iou_weight=2.0)
    assert parts["iou_mse"] == pytest.approx(((0.2 - 0.5) ** 2 + 0.01) / 2)
    assert total.item() == pytest.approx(20 * parts["focal"] + parts["dice"] + 2 * parts["iou_mse"], rel=1e-6)
