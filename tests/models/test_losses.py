import math

import pytest
import torch

from models.losses import SegmentationLoss, adaptive_wce_weight, soft_dice_loss, weighted_cross_entropy


def test_weighted_cross_entropy_matches_hand_computation():
    logits = torch.tensor([0.0, 2.0, -1.0, 3.0]).reshape(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).reshape(1, 1, 2, 2)
    w = 5.0

    def sig(x):
        return 1 / (1 + math.exp(-x))

    expected = (-w * math.log(sig(0.0)) - math.log(1 - sig(2.0)) - w * math.log(sig(-1.0)) - math.log(1 - sig(3.0))) / 4
    assert weighted_cross_entropy(logits, target, w).item() == pytest.approx(expected, rel=1e-6)


def test_soft_dice_loss_perfect_and_inverted():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1
    perfect = (target * 2 - 1) * 100
    assert soft_dice_loss(perfect, target).item() < 1e-3
    inverted = -perfect
    assert soft_dice_loss(inverted, target).item() > 0.9
    empty = torch.zeros(1, 1, 4, 4)
    assert soft_dice_loss(torch.full_like(empty, -100.0), empty).item() < 1e-6  # empty predicted empty


def test_segmentation_loss_adds_weighted_terms():
    logits, target = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.7).float()
    total = SegmentationLoss(50.0, dice_weight=0.5)(logits, target)
    assert torch.isclose(total, weighted_cross_entropy(logits, target, 50.0) + 0.5 * soft_dice_loss(logits, target))


def test_adaptive_weight_is_background_foreground_ratio_clipped():
    masks = torch.zeros(10, 10)
    masks[:1] = 1  # 10 % foreground → ratio 9
    assert adaptive_wce_weight(masks, 100.0) == pytest.approx(9.0)
    assert adaptive_wce_weight(masks, 4.0) == 4.0
    assert adaptive_wce_weight(torch.ones(3, 3), 100.0) == 1.0
    assert adaptive_wce_weight(torch.zeros(3, 3), 100.0) == 100.0
