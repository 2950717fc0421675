"""Thresholds of a segmenter's probability map: the one that best matches its masks, and a spread of
them that turns one map into several nested masks, with the spread that best matches the annotators."""

from __future__ import annotations

import torch

from models.distances import generalized_energy_distance

CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 … 0.95
SPREADS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0)  # 3: six of 16 thresholds above 1


@torch.no_grad()
def best_threshold(
    probs: torch.Tensor,
    annotations: torch.Tensor,
    candidates: tuple[float, ...] = CANDIDATES,
    standard_errors: float = 2.0,
) -> float:
    """The candidate t nearest 0.5 whose per-image Dice of (probs ≥ t) against the annotators'
    majority vote (Dice 1 when both are empty) is within `standard_errors` standard errors of the
    best candidate's, for probs N×1×H×W and annotations N×A×H×W (the standard error of the paired
    per-image differences; the exact best for a single image).

    A segmenter trained briefly, or with a large foreground weight, has its probabilities off
    0.5 (under-confident on small lesions, or marking too much), so 0.5 drops lesions or floods
    the image; empty images in the mean keep t from marking everything. Two standard errors keep
    0.5 unless the validation images clearly prefer another t: on LIDC at the default budget the
    curve is flat over 0.3–0.8, the exact best moved from 0.5 to 0.85 between seeds and one
    standard error still picked 0.55–0.65 in three seeds of five, trading detection away
    (validation dice_nonempty 0.668 against 0.676 at 0.5), while the WCE sweep's briefly trained
    64 px trials at w = 38–61 need 0.9–0.95 (0.5 scores 0.31–0.35 there against 0.54)."""
    target = (annotations.float().sum(1) * 2 >= annotations.shape[1]).flatten(1)
    rows = []
    for t in candidates:
        predicted = (probs[:, 0] >= t).flatten(1)
        overlap = (predicted & target).sum(1).float()
        total = (predicted.sum(1) + target.sum(1)).float()
        rows.append(torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total)))
    close = _within_standard_errors(torch.stack(rows), standard_errors)
    return min((t for t, ok in zip(candidates, close, strict=True) if ok), key=lambda t: abs(t - 0.5))


def spread_thresholds(center: float, spread: float, samples: int, majority_at_center: bool = False) -> torch.Tensor:
    """center·e^(spread·q_k) for q_k evenly spaced in [-1, 1], at least 0.01: one threshold per
    sample, symmetric about `center` on a log scale (an odd count, or one sample, includes it).

    Masks of one map at these thresholds are nested: a pixel the map is unsure of is in some of
    them, not all, which is where annotators tend to disagree. A threshold above 1 gives an empty
    mask whatever the map says: the sample of an annotator who marks nothing, which on LIDC is
    where annotators disagree most (a third of the validation slices have one marker of four).
    Clipping at 0.99 instead made that depend on how saturated a run's map happened to be.

    majority_at_center: with an even count K the mean mask (pixels that at least half the samples
    mark) is the map at the K/2-th lowest threshold, which in the symmetric set lies below the
    center, at center·e^(−spread/(K−1)) (0.45 for 0.5 and s = 1.5 at K = 16): the ensemble marks
    more than its map at `center` does. True drops q = −1 from K + 1 evenly spaced values, so that
    threshold is the center and the mean mask is the map's mask at `center`; an odd count is
    symmetric already."""
    if samples <= 1:
        q = torch.zeros(1)
    elif majority_at_center and samples % 2 == 0:
        q = torch.linspace(-1.0, 1.0, samples + 1)[1:]
    else:
        q = torch.linspace(-1.0, 1.0, samples)
    return (center * torch.exp(spread * q)).clamp(min=0.01)


@torch.no_grad()
def best_spread(
    probs: torch.Tensor,
    annotations: torch.Tensor,
    center: float,
    samples: int = 16,
    candidates: tuple[float, ...] = SPREADS,
) -> float:
    """The smallest candidate spread s whose `samples` nested masks (probs ≥ spread_thresholds(center,
    s, samples)) are within one standard error of the smallest mean GED to the annotators' masks, for
    probs N×1×H×W and annotations N×A×H×W. With one annotator per image the GED rewards matching
    that one mask, so s stays small; with several it matches their disagreement, up to empty samples
    where annotators mark nothing. On LIDC the GED is flat from s = 1.5 to 3: the rule keeps s from
    drifting along that plateau towards ever more empty samples."""
    rows = []
    for spread in candidates:
        thresholds = spread_thresholds(center, spread, samples).view(-1, 1, 1)
        pairs = zip(probs[:, 0], annotations, strict=True)
        rows.append(-torch.tensor([generalized_energy_distance(p[None] >= thresholds, a) for p, a in pairs]))
    close = _within_standard_errors(torch.stack(rows), 1.0)
    return min(s for s, ok in zip(candidates, close, strict=True) if ok)


def _within_standard_errors(scores: torch.Tensor, k: float) -> list[bool]:
    """For scores candidates × images (higher is better): whether each candidate's mean is within k
    standard errors of the paired per-image differences of the best candidate's mean (k = 1:
    Breiman's one-standard-error rule; the exact best alone for a single image)."""
    gaps = scores[scores.mean(1).argmax()] - scores  # ≥ 0 on average
    n = scores.shape[1]
    error = gaps.std(1) / n**0.5 if n > 1 else torch.zeros(len(scores))
    return (gaps.mean(1) <= k * error + 1e-9).tolist()
