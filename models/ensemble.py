"""What every segmenter returns for an image batch: N sampled masks and their summaries."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Ensemble:
    """N samples for B images of H×W pixels.

    probs: N×B×1×H×W sample probabilities in [0, 1] (a decoder's soft outputs, or 0/1 where the
    samples are masks); masks: the same thresholded at 0.5.
    mean (the confidence map), variance and entropy (uncertainty maps): B×1×H×W."""

    probs: torch.Tensor

    @property
    def masks(self) -> torch.Tensor:
        return self.probs >= 0.5

    @property
    def mean(self) -> torch.Tensor:
        return self.probs.mean(0)

    @property
    def variance(self) -> torch.Tensor:
        """Per-pixel variance of the sampled binary masks (how much the samples disagree)."""
        return self.masks.float().var(0, unbiased=False)

    @property
    def entropy(self) -> torch.Tensor:
        """Predictive entropy of the confidence map, in bits."""
        return binary_entropy(self.mean)


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in bits of Bernoulli(p), elementwise; p clipped to [1e-6, 1 − 1e-6] (0·log 0 = 0)."""
    q = p.clamp(1e-6, 1 - 1e-6)
    return -(q * torch.log2(q) + (1 - q) * torch.log2(1 - q))
