"""Does uncertainty point at errors? Streaming Pearson correlation and uncertainty–error overlap."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class UncertaintyErrorAccumulator:
    """Accumulates, over batches, (uncertainty u ∈ [0, 1], error e ∈ {0, 1}) pixel pairs.

    `correlation()`: Pearson r between u and e. `overlap()`: uncertainty–error overlap (UEO,
    Jungo & Reyes 2019), the best Dice between {u > τ} and the error mask over τ on a grid."""

    thresholds: int = 20
    sums: np.ndarray = field(default_factory=lambda: np.zeros(6))  # n, Σu, Σe, Σu², Σe², Σue
    intersection: np.ndarray = field(init=False)
    above: np.ndarray = field(init=False)
    errors: float = 0.0

    def __post_init__(self) -> None:
        self.grid = torch.linspace(0, 1, self.thresholds + 2, dtype=torch.float64)[1:-1]
        self.intersection = np.zeros(self.thresholds)
        self.above = np.zeros(self.thresholds)

    def update(self, uncertainty: torch.Tensor, error: torch.Tensor) -> None:
        u, e = uncertainty.double().flatten(), error.double().flatten()
        self.sums += np.array([u.numel(), u.sum(), e.sum(), (u * u).sum(), (e * e).sum(), (u * e).sum()])
        over = u[None, :] > self.grid[:, None]
        self.intersection += (over & (e[None, :] > 0.5)).sum(1).numpy()
        self.above += over.sum(1).numpy()
        self.errors += float(e.sum())

    def correlation(self) -> float:
        n, su, se, suu, see, sue = self.sums
        var_u, var_e = n * suu - su * su, n * see - se * se
        if n == 0 or var_u <= 0 or var_e <= 0:
            return float("nan")  # constant uncertainty or no error at all: r is undefined
        return float((n * sue - su * se) / np.sqrt(var_u * var_e))

    def overlap(self) -> float:
        denominator = self.above + self.errors
        dice = np.where(denominator > 0, 2 * self.intersection / np.maximum(denominator, 1e-12), 1.0)
        return float(dice.max())
