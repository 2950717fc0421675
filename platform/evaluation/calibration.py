"""Streaming calibration of pixel-wise confidence maps: binned ECE, Brier score, NLL, reliability.

ECE here is the *positive-class* binned ECE: the confidence of a pixel is its foreground
probability p, its 'accuracy' is the target y (foreground = 1), and
ECE = Σ_b (n_b / n) · |mean(y in b) − mean(p in b)| over equal-width bins of p.
For binary input this is what netcal's `ECE(bins).measure(p, y)` returns (tested against it).
Targets may be soft (the fraction of annotators marking a pixel)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-7


def region_near_annotations(annotations: torch.Tensor, radius: int) -> torch.Tensor:
    """B×A×H×W annotator masks → B×H×W bool: pixels within `radius` (Chebyshev distance) of any mark.

    Background dominates medical images; calibration restricted to this band says whether the
    model is honest where it matters."""
    union = annotations.bool().any(1, keepdim=True).float()
    if radius <= 0:
        return union[:, 0].bool()
    return F.max_pool2d(union, 2 * radius + 1, stride=1, padding=radius)[:, 0].bool()


@dataclass
class CalibrationAccumulator:
    """Per-bin sums over any number of batches: memory stays O(bins) whatever the dataset size."""

    bins: int = 10
    count: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)
    accuracy: np.ndarray = field(init=False)
    brier_sum: float = 0.0
    nll_sum: float = 0.0

    def __post_init__(self) -> None:
        self.count = np.zeros(self.bins, np.int64)
        self.confidence = np.zeros(self.bins, np.float64)
        self.accuracy = np.zeros(self.bins, np.float64)
        self.edges = torch.linspace(0, 1, self.bins + 1, dtype=torch.float64)

    def update(self, probs: torch.Tensor, targets: torch.Tensor, region: torch.Tensor | None = None) -> None:
        """Add pixels: probs and targets of any equal shape (targets in [0, 1]); `region` selects pixels."""
        p, y = probs.double().flatten(), targets.double().flatten()
        if region is not None:
            keep = region.flatten().bool()
            p, y = p[keep], y[keep]
        # Same edges and right-closed last bin as numpy.histogram(dd), hence as netcal.
        index = (torch.bucketize(p, self.edges, right=True) - 1).clamp(0, self.bins - 1)
        self.count += torch.bincount(index, minlength=self.bins).numpy()
        self.confidence += torch.bincount(index, weights=p, minlength=self.bins).numpy()
        self.accuracy += torch.bincount(index, weights=y, minlength=self.bins).numpy()
        self.brier_sum += float(((p - y) ** 2).sum())
        clipped = p.clamp(EPS, 1 - EPS)
        self.nll_sum += float(-(y * clipped.log() + (1 - y) * (1 - clipped).log()).sum())

    @property
    def pixels(self) -> int:
        return int(self.count.sum())

    def ece(self) -> float:
        """Positive-class expected calibration error (see module docstring); NaN without pixels."""
        if self.pixels == 0:
            return float("nan")
        filled = self.count > 0
        gap = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(gap.sum() / self.pixels)

    def brier(self) -> float:
        """Mean squared difference between foreground probability and target."""
        return self.brier_sum / self.pixels if self.pixels else float("nan")

    def nll(self) -> float:
        """Mean binary negative log-likelihood in nats (probabilities clipped to [1e-7, 1 − 1e-7])."""
        return self.nll_sum / self.pixels if self.pixels else float("nan")

    def reliability(self) -> list[dict[str, float]]:
        """Reliability diagram data: one row per bin (lower, upper, count, confidence, accuracy)."""
        rows = []
        for b in range(self.bins):
            n = int(self.count[b])
            rows.append(
                {
                    "bin": b,
                    "lower": b / self.bins,
                    "upper": (b + 1) / self.bins,
                    "count": n,
                    "confidence": self.confidence[b] / n if n else float("nan"),
                    "accuracy": self.accuracy[b] / n if n else float("nan"),
                }
            )
        return rows
