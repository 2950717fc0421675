"""Comparisons of runs: paired (same images) and independent (different images); bootstrap CIs and rank tests."""

from __future__ import annotations

from platform.errors import UsageError

import numpy as np
import polars as pl
from scipy.stats import mannwhitneyu, wilcoxon


def with_dice_nonempty(images: pl.DataFrame) -> pl.DataFrame:
    """Per-image `dice_nonempty`: the image's Dice where its consensus is not empty, else null, so a
    comparison of it pairs only the slices that have something to find."""
    return images.with_columns(
        pl.when(pl.col("foreground") > 0).then(pl.col("dice")).otherwise(None).alias("dice_nonempty")
    )


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
    then whole clusters are resampled, since slices of one patient are not independent). Each
    metric resamples only the clusters it has pairs in: a patient whose slices all have an empty
    consensus has no `dice_nonempty`, and drawing it would only vary how many patients count.
    With `ece` among the metrics and both tables holding `ece_bin_gaps` and `pixels` (evaluations
    since they were added), an `ece_pooled` row follows it: the pixel-pooled ECE of each side over
    the paired images, the evaluation's own `ece`, whose CI comes from recomputing it on resampled
    clusters (no rank test: it is one number per side, not per image).
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
        paired = counts > 0
        sums, counts = sums[paired], counts[paired]
        low = high = float("nan")  # no pair at all: nothing to resample
        if paired.any():
            picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
            boot = sums[picks].sum(1) / counts[picks].sum(1)
            low, high = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
        nonzero = diff[ok][diff[ok] != 0]
        p_value = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else float("nan")
        rows.append(
            {
                "metric": metric,
                "mean_a": _mean_over(joined[metric], ok),
                "mean_b": _mean_over(joined[f"{metric}_b"], ok),
                "difference": float(diff[ok].mean()) if ok.any() else float("nan"),
                "ci_low": float(low),
                "ci_high": float(high),
                "wilcoxon_p": p_value,
                "pairs": int(ok.sum()),
                "clusters": int(paired.sum()),
            }
        )
        if metric == "ece" and {"ece_bin_gaps", "ece_bin_gaps_b", "pixels"} <= set(joined.columns):
            rows.append(_pooled_ece_row(joined, inverse, len(unique), seed, resamples, confidence))
    return pl.DataFrame(rows)


def _pooled_ece_row(
    joined: pl.DataFrame, inverse: np.ndarray, clusters: int, seed: int, resamples: int, confidence: float
) -> dict:
    """The `ece_pooled` row of `paired_comparison`: ECE = Σ_bins |Σ_images gap| / Σ_images pixels,
    each side's from its per-image bin gaps, the CI from the same sums over resampled clusters."""
    pixels = np.bincount(inverse, weights=joined["pixels"].to_numpy().astype(float), minlength=clusters)
    sides = []
    for column in ("ece_bin_gaps", "ece_bin_gaps_b"):
        gaps = np.stack(joined[column].to_list()).astype(float)  # images × bins
        sides.append(np.stack([np.bincount(inverse, weights=g, minlength=clusters) for g in gaps.T], 1))
    ece_a, ece_b = (np.abs(g.sum(0)).sum() / pixels.sum() for g in sides)
    # its own generator: the rows after it keep the draws they had before it existed
    picks = np.random.default_rng(seed).integers(0, clusters, size=(resamples, clusters))
    drawn = pixels[picks].sum(1)
    boot = [np.abs(g[picks].sum(1)).sum(1) / drawn for g in sides]
    low, high = np.quantile(boot[1] - boot[0], [(1 - confidence) / 2, (1 + confidence) / 2])
    return {
        "metric": "ece_pooled",
        "mean_a": float(ece_a),
        "mean_b": float(ece_b),
        "difference": float(ece_b - ece_a),
        "ci_low": float(low),
        "ci_high": float(high),
        "wilcoxon_p": float("nan"),
        "pairs": joined.height,
        "clusters": clusters,
    }


def _mean_over(values: pl.Series, ok: np.ndarray) -> float:
    """The mean over the pairs both sides measured (dice_nonempty, say, is null on empty slices)."""
    return float(values.to_numpy().astype(float)[ok].mean()) if ok.any() else float("nan")


def independent_difference(
    a: pl.DataFrame,
    b: pl.DataFrame,
    metrics: tuple[str, ...],
    cluster: str | None = None,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pl.DataFrame:
    """Mean difference b − a of each metric between two sets of different images (a run's own
    split against an external folder, say): a bootstrap CI resampling each side on its own (whole
    clusters when given) and the Mann-Whitney U p-value. Nulls (dice_nonempty on empty slices) are
    left out; a metric either side lacks gives NaNs."""
    rng = np.random.default_rng(seed)
    rows = []
    for metric in metrics:
        sides = [_cluster_sums(frame, metric, cluster) for frame in (a, b)]
        if any(counts.sum() == 0 for _, counts, _ in sides):
            rows.append(
                {
                    "metric": metric,
                    "mean_a": np.nan,
                    "mean_b": np.nan,
                    "difference": np.nan,
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "p_value": np.nan,
                    "images_a": 0,
                    "images_b": 0,
                }
            )
            continue
        boots = []
        for sums, counts, _ in sides:
            picks = rng.integers(0, len(sums), size=(resamples, len(sums)))
            boots.append(sums[picks].sum(1) / np.maximum(counts[picks].sum(1), 1))
        low, high = np.quantile(boots[1] - boots[0], [(1 - confidence) / 2, (1 + confidence) / 2])
        (_, _, values_a), (_, _, values_b) = sides
        rows.append(
            {
                "metric": metric,
                "mean_a": float(values_a.mean()),
                "mean_b": float(values_b.mean()),
                "difference": float(values_b.mean() - values_a.mean()),
                "ci_low": float(low),
                "ci_high": float(high),
                "p_value": float(mannwhitneyu(values_a, values_b).pvalue),
                "images_a": len(values_a),
                "images_b": len(values_b),
            }
        )
    return pl.DataFrame(rows)


def _cluster_sums(frame: pl.DataFrame, metric: str, cluster: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-cluster sums, per-cluster counts, the finite values) of one metric column."""
    if metric not in frame.columns:
        return np.zeros(0), np.zeros(0, int), np.zeros(0)
    values = frame[metric].to_numpy().astype(float)
    ok = np.isfinite(values)
    groups = frame[cluster].to_numpy()[ok] if cluster and cluster in frame.columns else np.arange(ok.sum())
    _, inverse = np.unique(groups, return_inverse=True)
    return np.bincount(inverse, weights=values[ok]), np.bincount(inverse), values[ok]
