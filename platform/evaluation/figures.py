"""Figures for people (PNG): reliability diagram, confidence-map and uncertainty panels, the
risk–coverage curves of failure detection, metric histograms."""

from __future__ import annotations

from pathlib import Path
from platform.atomic import atomic_write

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


def save_figure(figure: plt.Figure, path: Path) -> Path:
    """Write a PNG via a temporary name and rename; closes the figure."""
    try:
        return atomic_write(path, lambda tmp: figure.savefig(tmp, format=path.suffix[1:], dpi=110, bbox_inches="tight"))
    finally:
        plt.close(figure)


def reliability_diagram(reliability: pl.DataFrame, path: Path, title: str = "") -> Path:
    """Bars of per-bin foreground frequency against mean confidence, with bin counts (log) below."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(4.5, 5.5), sharex=True, height_ratios=[3, 1])
    centres = (reliability["lower"] + reliability["upper"]) / 2
    width = float(reliability["upper"][0] - reliability["lower"][0])
    top.bar(centres, reliability["accuracy"].fill_nan(0), width=width * 0.9, edgecolor="k", label="foreground rate")
    top.plot([0, 1], [0, 1], "r--", label="perfect calibration")
    top.set_ylabel("observed foreground frequency")
    top.set_title(title or "Reliability (positive class)")
    top.legend(loc="upper left")
    bottom.bar(centres, reliability["count"], width=width * 0.9, color="grey")
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted foreground probability")
    bottom.set_ylabel("pixels")
    return save_figure(figure, path)


def confidence_panels(panels: list[dict[str, np.ndarray]], path: Path) -> Path:
    """Rows: image | annotations (overlaid count) | up to 4 samples | mean | entropy."""
    columns = 4 + max((len(p["samples"]) for p in panels), default=0)  # image, annotators, samples, mean, entropy
    figure, axes = plt.subplots(len(panels), columns, figsize=(1.8 * columns, 1.9 * len(panels)), squeeze=False)
    for row, panel in enumerate(panels):
        shown = [("image", panel["image"][0], "gray"), ("annotators", panel["annotations"].sum(0), "viridis")]
        shown += [(f"sample {i + 1}", s, "gray") for i, s in enumerate(panel["samples"])]
        shown += [("mean", panel["mean"], "magma"), ("entropy", panel["entropy"], "inferno")]
        for col, (name, image, cmap) in enumerate(shown[:columns]):
            axes[row, col].imshow(
                image,
                cmap=cmap,
                vmin=0 if name != "image" else None,
                vmax=1 if name in ("mean", "entropy") or name.startswith("sample") else None,
            )
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(name, fontsize=8)
        for col in range(len(shown), columns):
            axes[row, col].set_axis_off()
    return save_figure(figure, path)


def uncertainty_panels(panels: list[dict[str, np.ndarray]], path: Path) -> Path:
    """Rows: image | annotators' disagreement | predictive | aleatoric | epistemic (bits, 0-1):
    does the uncertainty sit where the raters differ, and which part of it is the model's own?"""
    shown = [
        ("image", "image", "gray"),
        ("disagreement", "raters' disagreement", "viridis"),
        ("predictive", "predictive entropy", "inferno"),
        ("aleatoric", "aleatoric (expected entropy)", "inferno"),
        ("epistemic", "epistemic (mutual information)", "inferno"),
    ]
    figure, axes = plt.subplots(len(panels), len(shown), figsize=(2.0 * len(shown), 2.0 * len(panels)), squeeze=False)
    for row, panel in enumerate(panels):
        for col, (key, title, cmap) in enumerate(shown):
            image = panel[key][0] if key == "image" else panel[key]
            axes[row, col].imshow(
                image, cmap=cmap, vmin=None if key == "image" else 0, vmax=None if key == "image" else 1
            )
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title, fontsize=7)
    return save_figure(figure, path)


def risk_coverage(images: pl.DataFrame, path: Path, title: str = "") -> Path:
    """Risk (1 − Dice) of the images kept against coverage, keeping the least uncertain first, for
    each image score (score_*), with the best possible ranking (by risk itself) for reference."""
    from platform.evaluation.values import AGGREGATIONS

    risks = 1.0 - images["dice"].to_numpy().astype(float)
    coverage = np.arange(1, len(risks) + 1) / max(len(risks), 1)
    figure, axis = plt.subplots(figsize=(4.8, 3.6))
    for name in AGGREGATIONS:
        order = np.argsort(images[f"score_{name}"].to_numpy().astype(float), kind="stable")
        axis.plot(coverage, np.cumsum(risks[order]) / np.arange(1, len(order) + 1), label=name.replace("_", " "))
    best = np.sort(risks)
    axis.plot(coverage, np.cumsum(best) / np.arange(1, len(best) + 1), "k--", label="optimal")
    axis.set_xlabel("coverage (share of images kept)")
    axis.set_ylabel("risk (mean 1 − Dice of kept)")
    axis.set_title(title or "Risk–coverage", fontsize=9)
    axis.legend(fontsize=7)
    return save_figure(figure, path)


def metric_histograms(images: pl.DataFrame, path: Path, metrics: tuple[str, ...] = ("dice", "ece")) -> Path:
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.5 * len(metrics), 3))
    for axis, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        axis.hist(images[metric].drop_nans().to_numpy(), bins=20, color="steelblue", edgecolor="k")
        axis.set_xlabel(f"per-image {metric}")
        axis.set_ylabel("images")
    return save_figure(figure, path)
