"""Distribution metrics between N sampled masks and A annotator masks of one image. The IoU
distance and the GED live in models/distances.py: the latent model fits its spread by the same GED."""

from __future__ import annotations

import math

import torch
from scipy.optimize import linear_sum_assignment

from models.distances import generalized_energy_distance, iou_matrix

__all__ = ["generalized_energy_distance", "hungarian_matched_iou", "iou_matrix"]


def hungarian_matched_iou(samples: torch.Tensor, annotations: torch.Tensor) -> float:
    """HM-IoU: both sets tiled to their least common multiple size, matched one-to-one by the
    Hungarian algorithm to maximise IoU, then the mean matched IoU (Kohl et al., 2019)."""
    n, a = samples.shape[0], annotations.shape[0]
    size = n * a // math.gcd(n, a)
    ious = iou_matrix(samples, annotations).repeat(size // n, size // a).numpy()
    rows, cols = linear_sum_assignment(ious, maximize=True)
    return float(ious[rows, cols].mean())
