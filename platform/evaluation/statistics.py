"""Paired comparison of two runs on the same images: bootstrap CIs and Wilcoxon signed-rank tests."""

from __future__ import annotations

from platform.errors import UsageError

import numpy as np
import polars as pl
from scipy.stats import wilcoxon


def paired_comparison(
    a: pl.DataFrame,
    b: pl.DataFrame,
    metrics: tuple[str, ...] = ("dice", "ece", "brier"),
    cluster: str | None = None,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Mean difference b − a of each metric, its bootstrap CI and the Wilcoxon p-value.

    a, b: per-image tables with an `id` column (and `cluster`, e.g. the patient, when given:
    then whole clusters are resampled, since slices of one patient are not independent).
    Raises UsageError when the runs share no image."""
    joined = a.join(b, on="id", suffix="_b")
    if joined.is_empty():
        raise UsageError("the two runs have no image id in common: evaluate them on the same split")
    rng = np.random.default_rng(seed)
    groups = joined[cluster].to_numpy() if cluster else np.arange(joined.height)
    unique, inverse = np.unique(groups, return_inverse=True)
    rows = []
    for metric in metrics:
        diff = (joined[f"{metric}_b"] - joined[metric]).to_numpy().astype(float)
        ok = np.isfinite(diff)
        sums = np.bincount(inverse[ok], weights=diff[ok], minlength=len(unique))
        counts = np.bincount(inverse[ok], minlength=len(unique))
        picks = rng.integers(0, len(unique), size=(resamples, len(unique)))
        boot = sums[picks].sum(1) / np.maximum(counts[picks].sum(1), 1)
        low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
        nonzero = diff[ok][diff[ok] != 0]
        p_value = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else float("nan")
        rows.append(
            {
                "metric": metric,
                "mean_a": _mean_over(joined[metric], ok),
                "mean_b": _mean_over(joined[f"{metric}_b"], ok),
                "difference": float(diff[ok].mean()),
                "ci_low": float(low),
                "ci_high": float(high),
                "wilcoxon_p": p_value,
                "pairs": int(ok.sum()),
                "clusters": len(unique),
            }
        )
    return pl.DataFrame(rows)


def _mean_over(values: pl.Series, ok: np.ndarray) -> float:
    """The mean over the pairs both sides measured (dice_nonempty, say, is null on empty slices)."""
    return float(values.to_numpy().astype(float)[ok].mean()) if ok.any() else float("nan")
