"""Uncertainty measured the way ValUES validates it (Kahl et al., ICLR 2024): decomposition,
aggregation to an image score, failure detection (AURC), ambiguity (NCC), and boundary quality.

Per pixel, from N sampled probability maps: the predictive entropy of the mean, the expected
entropy of the samples (aleatoric) and their difference, the mutual information (epistemic).
Everything here is a function of one image's tensors, so results never depend on the batch size;
`failure_detection` ranks the per-image scores of a whole split."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from models.ensemble import binary_entropy

AGGREGATIONS = ("mean", "sum", "patch_max", "threshold_mean")
# Candidate thresholds (bits) of the threshold-mean score; one is chosen on validation (`choose_threshold`).
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))


def decompose(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """probs N×H×W → predictive, aleatoric and epistemic (mutual information) maps H×W, in bits."""
    predictive = binary_entropy(probs.double().mean(0))
    aleatoric = binary_entropy(probs.double()).mean(0)
    return {"predictive": predictive, "aleatoric": aleatoric, "epistemic": (predictive - aleatoric).clamp_min(0)}


def aggregate(uncertainty: torch.Tensor, window: int = 8, threshold: float = 0.5) -> dict[str, float]:
    """ValUES' four image-level scores of a pixel map H×W: its mean, its sum, the largest mean over
    a sliding `window`×`window` patch (stride 1), and the mean of the pixels above `threshold`
    (0 when none is)."""
    u = uncertainty.double()
    size = min(window, *u.shape)
    patches = F.avg_pool2d(u[None, None], size, stride=1)
    above = u[u > threshold]
    return {
        "mean": float(u.mean()),
        "sum": float(u.sum()),
        "patch_max": float(patches.max()),
        "threshold_mean": float(above.mean()) if above.numel() else 0.0,
    }


def failure_detection(scores: np.ndarray, risks: np.ndarray) -> tuple[float, float]:
    """(AURC, E-AURC) of ranking images by `scores` (higher = less trusted) against `risks`.

    Coverage c keeps the c·n least uncertain images; the risk at c is their mean risk; AURC is its
    mean over c = 1/n … 1. E-AURC subtracts the AURC of the best possible ranking (by risk itself)."""
    scores, risks = np.asarray(scores, float), np.asarray(risks, float)
    ok = np.isfinite(scores) & np.isfinite(risks)
    scores, risks = scores[ok], risks[ok]
    if len(risks) == 0:
        return float("nan"), float("nan")

    def area(order: np.ndarray) -> float:
        kept = np.cumsum(risks[order]) / np.arange(1, len(order) + 1)
        return float(kept.mean())

    achieved = area(np.argsort(scores, kind="stable"))
    optimal = area(np.argsort(risks, kind="stable"))
    return achieved, achieved - optimal


def threshold_means(uncertainty: torch.Tensor, thresholds: tuple[float, ...] = THRESHOLDS) -> list[float]:
    """The threshold-mean score of one pixel map at every candidate threshold (0 where no pixel is above)."""
    u = uncertainty.double().flatten()
    return [float(u[u > t].mean()) if (u > t).any() else 0.0 for t in thresholds]


def choose_threshold(scores: np.ndarray, risks: np.ndarray, thresholds: tuple[float, ...] = THRESHOLDS) -> float:
    """The candidate threshold whose threshold-mean score ranks the images best (lowest AURC).

    scores: images × thresholds (`threshold_means` of each image). Use it on a validation split
    and carry the threshold to test and external data; choosing it on test would flatter it."""
    scores = np.asarray(scores, float)
    areas = [failure_detection(scores[:, k], risks)[0] for k in range(len(thresholds))]
    if all(np.isnan(areas)):
        return 0.5
    return float(thresholds[int(np.nanargmin(areas))])


def normalized_cross_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """NCC of two maps: mean of the products of their z-scores (NaN when either is constant)."""
    x, y = a.double().flatten(), b.double().flatten()
    sx, sy = x.std(unbiased=False), y.std(unbiased=False)
    if sx == 0 or sy == 0:
        return float("nan")
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def disagreement(annotations: torch.Tensor) -> torch.Tensor:
    """A×H×W annotator masks → H×W map of the pixels where the annotators differ."""
    marked = annotations.bool()
    return (marked.any(0) & ~marked.all(0)).double()


def boundary_distances(prediction: torch.Tensor, target: torch.Tensor, tolerance: float = 2.0) -> dict[str, float]:
    """HD95 (pixels) and normalised surface Dice at `tolerance` px of two H×W masks, with MONAI's
    metrics. NaN unless both masks are non-empty."""
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    if not (prediction.any() and target.any()):
        return {"hd95": float("nan"), "nsd": float("nan")}

    def one_hot(mask: torch.Tensor) -> torch.Tensor:
        m = mask.bool()[None]
        return torch.stack([~m, m], 1).float()  # 1×2×H×W: background, foreground

    p, t = one_hot(prediction), one_hot(target)
    with warnings.catch_warnings():  # MONAI 1.6 warns about its own internal argument on every call
        warnings.simplefilter("ignore", FutureWarning)
        return {
            "hd95": float(compute_hausdorff_distance(p, t, percentile=95)[0, 0]),
            "nsd": float(compute_surface_dice(p, t, class_thresholds=[tolerance])[0, 0]),
        }
