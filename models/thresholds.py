"""Thresholds of a segmenter's probability map: the one that best matches its masks, and a spread of
them that turns one map into several nested masks."""

from __future__ import annotations

import torch

CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 … 0.95


@torch.no_grad()
def best_threshold(probs: torch.Tensor, annotations: torch.Tensor, candidates: tuple[float, ...] = CANDIDATES) -> float:
    """The candidate t maximising the mean per-image Dice of (probs ≥ t) against the annotators'
    majority vote (Dice 1 when both are empty), for probs N×1×H×W and annotations N×A×H×W.

    A segmenter trained briefly with weighted CE + Dice is often under-confident on small
    lesions, so 0.5 drops them; empty images in the mean keep t from marking everything.
    Ties go to the candidate nearest 0.5."""
    target = (annotations.float().sum(1) * 2 >= annotations.shape[1]).flatten(1)
    scores = []
    for t in candidates:
        predicted = (probs[:, 0] >= t).flatten(1)
        overlap = (predicted & target).sum(1).float()
        total = (predicted.sum(1) + target.sum(1)).float()
        per_image = torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total))
        scores.append(float(per_image.mean()))
    best = max(scores)
    return min((t for t, s in zip(candidates, scores, strict=True) if s >= best - 1e-9), key=lambda t: abs(t - 0.5))


def spread_thresholds(center: float, spread: float, samples: int) -> torch.Tensor:
    """center·e^(spread·q_k) for q_k evenly spaced in [-1, 1], clipped to [0.01, 0.99]: one threshold
    per sample, symmetric about `center` on a log scale (an odd count, or one sample, includes it).

    Masks of one map at these thresholds are nested: a pixel the map is unsure of is in some of
    them, not all, which is where annotators tend to disagree."""
    q = torch.linspace(-1.0, 1.0, samples) if samples > 1 else torch.zeros(1)
    return (center * torch.exp(spread * q)).clamp(0.01, 0.99)
