"""Overlap metrics on binary masks (numpy or torch, any leading shape; last two axes are H×W)."""

from __future__ import annotations

import torch


def dice(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice per mask over the last two axes; 1 when both are empty (nothing to find, nothing found)."""
    p, t = prediction.bool().flatten(-2), target.bool().flatten(-2)
    overlap = (p & t).sum(-1).float()
    total = (p.sum(-1) + t.sum(-1)).float()
    return torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total))


def iou(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Intersection over union per mask; 1 when both are empty."""
    p, t = prediction.bool().flatten(-2), target.bool().flatten(-2)
    union = (p | t).sum(-1).float()
    return torch.where(union > 0, (p & t).sum(-1).float() / union.clamp(min=1), torch.ones_like(union))


def majority_vote(annotations: torch.Tensor) -> torch.Tensor:
    """B×A×H×W annotator masks → B×1×H×W consensus: pixels marked by at least half the annotators."""
    votes = annotations.float().sum(1, keepdim=True)
    return votes * 2 >= annotations.shape[1]
