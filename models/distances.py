"""Distances between sets of binary masks, one definition for the spread the latent model fits
(models/thresholds.py) and for the evaluation (platform/evaluation/distribution.py).

Distance d(a, b) = 1 − IoU(a, b), with d(empty, empty) = 0: two raters who both see no
lesion agree perfectly (the Probabilistic U-Net / PHiSeg convention)."""

from __future__ import annotations

import torch


def iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of masks a: N×H×W and b: M×H×W → N×M, 1 where both masks are empty."""
    fa, fb = a.bool().flatten(1).float(), b.bool().flatten(1).float()
    intersection = fa @ fb.T
    union = fa.sum(1, keepdim=True) + fb.sum(1) - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))


def generalized_energy_distance(samples: torch.Tensor, annotations: torch.Tensor) -> float:
    """Squared GED: 2·E[d(S, Y)] − E[d(S, S')] − E[d(Y, Y')]; samples N×H×W, annotations A×H×W.

    Expectations run over all ordered pairs including identical ones (d = 0 there), as the
    reference implementations do. 0 when the sample set equals the annotator set."""
    cross = 1 - iou_matrix(samples, annotations)
    within_s = 1 - iou_matrix(samples, samples)
    within_y = 1 - iou_matrix(annotations, annotations)
    return float(2 * cross.mean() - within_s.mean() - within_y.mean())
