"""Lesion presence by how many annotators mark an image: does the ensemble doubt as the raters do?

On LIDC nearly every slice whose majority vote is empty has exactly one rater of four marking a
lesion, so overall Dice there measures how a model treats a lesion one radiologist saw. A sampler
calibrated at the level of the image marks such a slice in about one sample of four, and a slice
all four marked in every sample; `presence_error` (the registry) is the per-image gap."""

from __future__ import annotations

import numpy as np
import polars as pl

COLUMNS = ("raters_marking", "images", "samples_marking", "mask_marks", "dice", "ece")


def presence_table(images: pl.DataFrame) -> pl.DataFrame:
    """One row per share of annotators marking anything (0, 1/A, …, 1): the images, the mean
    share of samples marking anything, the share whose ensemble-mean mask marks anything, and
    their mean Dice and per-image ECE. Empty for evaluations made before the columns existed."""
    if "raters_marking" not in images.columns:
        return pl.DataFrame(schema={c: pl.Float64 for c in COLUMNS})
    return (
        images.group_by("raters_marking")
        .agg(
            pl.len().cast(pl.Float64).alias("images"),
            pl.col("samples_marking").mean(),
            (pl.col("predicted_foreground") > 0).cast(pl.Float64).mean().alias("mask_marks"),
            pl.col("dice").mean(),
            pl.col("ece").mean(),
        )
        .sort("raters_marking")
        .select(COLUMNS)
    )


def presence_gate(images: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """The per-image rows as if each mask were emptied unless the confidence map reaches
    `threshold` somewhere (a slice-level presence decision above the pixels' 0.5): an emptied
    image scores Dice 1 where the majority is empty and 0 where it is not. Only `dice`,
    `predicted_foreground` and a boolean `gated` column change."""
    marked = images["predicted_foreground"].to_numpy() > 0
    gated = marked & (images["confidence_max"].to_numpy() < threshold)
    consensus = images["foreground"].to_numpy() > 0
    dice = np.where(gated, np.where(consensus, 0.0, 1.0), images["dice"].to_numpy())
    foreground = np.where(gated, 0.0, images["predicted_foreground"].to_numpy())
    return images.with_columns(
        pl.Series("dice", dice), pl.Series("predicted_foreground", foreground), pl.Series("gated", gated)
    )
