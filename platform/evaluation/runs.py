"""Evaluate a trained run folder: the one path the evaluate command, study trials and quick validation share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from platform.build import load_trained
from platform.config_types import Config
from platform.data.loader import PreparedSplit
from platform.evaluation.ensembles import Evaluation, EvaluationSettings, evaluate_ensembles

import polars as pl
from torch import nn


def evaluate_checkpoint(
    config: Config,
    run_dir: Path,
    split: str,
    settings: EvaluationSettings,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Evaluation, pl.DataFrame, dict]:
    """Load a run folder's model and evaluate its ensembles on a prepared split.

    Returns the evaluation, its per-image rows with the patient/case `group` and the image's
    `source` file, and the run state."""
    model, state = load_trained(run_dir, config)
    return (*evaluate_model(model, config, split, settings, progress), state)


def evaluate_model(
    model: nn.Module,
    config: Config,
    split: str,
    settings: EvaluationSettings,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Evaluation, pl.DataFrame]:
    """`evaluate_checkpoint` for a model already loaded (the trial measures its autoencoder after)."""
    dataset_dir = Path(config.train.prepared_dir) / config.data.name
    data = PreparedSplit.open(dataset_dir, split)
    manifest = pl.read_parquet(dataset_dir / "manifest.parquet").filter(pl.col("split") == split).sort("index")
    result = evaluate_ensembles(model, data, manifest["id"].to_list(), settings, progress)
    return result, result.images.join(manifest.select("id", "group", "source"), on="id")
