"""Segmentation losses of the mask path: weighted cross-entropy plus soft Dice (the paper's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """Binary cross-entropy with foreground pixels weighted by `weight`, averaged over pixels.

    logits, target: B×1×H×W (target in {0, 1}). Per pixel:
    −[w·y·log σ(x) + (1 − y)·log(1 − σ(x))]."""
    return _weighted_bce(logits, target, weight).mean()


def _weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    pos_weight = torch.tensor(weight, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=pos_weight, reduction="none")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft Dice per image, averaged over the batch. logits, target: B×1×H×W.

    `smooth` keeps an empty mask predicted empty at loss ≈ 0 instead of 0/0."""
    return _soft_dice_per_image(logits, target, smooth).mean()


def _soft_dice_per_image(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    probs = torch.sigmoid(logits).flatten(1)
    target = target.to(probs.dtype).flatten(1)
    overlap = (probs * target).sum(1)
    return 1 - (2 * overlap + smooth) / (probs.sum(1) + target.sum(1) + smooth)


class SegmentationLoss(nn.Module):
    """WCE(w) + dice_weight · Dice on mask logits (B×1×H×W)."""

    def __init__(self, wce_weight: float, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.wce_weight = wce_weight
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.per_image(logits, target).mean()

    def per_image(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each image, B (the batch mean is `forward`)."""
        wce = _weighted_bce(logits, target, self.wce_weight).flatten(1).mean(1)
        return wce + self.dice_weight * _soft_dice_per_image(logits, target)


def adaptive_wce_weight(masks: torch.Tensor, max_weight: float) -> float:
    """The background/foreground pixel ratio of `masks` (any shape, {0, 1}), clipped to [1, max_weight].

    The paper's open question 3: derive w from the data instead of fixing 5 or 50."""
    foreground = float(masks.float().mean())
    if foreground <= 0:
        return max_weight
    return float(min(max((1 - foreground) / foreground, 1.0), max_weight))
