"""A study's best trials evaluated on a folder none of them saw: the `external` results table.

`python -m platform.study evaluate <study> --external <folder> --layout <layout> [--top K]` picks
the K best completed trials (first objective), checks the folder once (layout, readable pairs,
annotator count) before anything starts, then evaluates each trial's checkpoint on every image of
the folder as one Ray task (so a cluster spreads them), normalised with the statistics of the
data the trial trained on. Each task writes the trial's per-image rows to
<study>/runs/<trial>/eval-external-<folder>/ and one row to <study>/external/<trial>--<folder>.parquet."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from platform.config import load_run_config
from platform.config_types import Config
from platform.errors import UsageError
from platform.evaluation.external import check_annotators, external_config
from platform.evaluation.registry import SUMMARY_METRICS
from platform.results import write_table
from platform.spec import StudySpec, parameter_column
from typing import Any

import polars as pl


@dataclass(frozen=True)
class ExternalJob:
    """One trial to evaluate on the folder."""

    study: str
    trial_id: str
    run_dir: Path
    config: Config
    folder: Path
    layout: str
    options: dict[str, str]  # samples, steps, images, seed (as `platform.evaluate` reads them)

    @property
    def shard(self) -> Path:
        return self.run_dir.parent.parent / "external" / f"{self.trial_id}--{self.folder.name}.parquet"


def best_trials(trials: pl.DataFrame, spec: StudySpec, top: int) -> pl.DataFrame:
    """The `top` best completed trials by the spec's first objective. Raises UsageError when none completed."""
    if top < 1:
        raise UsageError(f"--top {top}: must be ≥ 1")
    done = trials.filter(pl.col("status") == "completed") if trials.height else trials
    if done.is_empty():
        raise UsageError(f"study {spec.name}: no completed trial to evaluate")
    first = spec.objectives[0]
    return done.sort(first.metric, descending=first.mode == "max", nulls_last=True).head(top)


def trial_run_config(row: dict[str, Any], spec: StudySpec, results_dir: Path, prepared_dir: Path) -> Config:
    """The config a trial trained with: the config.yaml its run folder keeps, else rebuilt from the
    spec and the row's parameters and seed (studies run before trials kept one)."""
    run_dir = results_dir / "runs" / row["trial_id"]
    if (run_dir / "config.yaml").is_file():
        return load_run_config(run_dir / "config.yaml")
    params = {q.key: row[parameter_column(q.key)] for q in spec.search if row.get(parameter_column(q.key)) is not None}
    from platform.trial import TrialContext, trial_config

    repeat = int(m.group(1)) if (m := re.search(r"-r(\d+)$", row["trial_id"])) else 0
    context = TrialContext(spec, str(results_dir), str(prepared_dir), "", "")
    return trial_config(context, params, row["trial_id"], repeat)


def plan(
    spec: StudySpec,
    results_dir: Path,
    prepared_dir: Path,
    trials: pl.DataFrame,
    folder: Path,
    layout: str,
    top: int,
    options: dict[str, str],
) -> list[ExternalJob]:
    """The jobs, after checking everything a job would trip on (exit 2 before anything is written)."""
    jobs = []
    for row in best_trials(trials, spec, top).iter_rows(named=True):
        run_dir = results_dir / "runs" / row["trial_id"]
        if not (run_dir / "checkpoint.pt").is_file():
            raise UsageError(f"{run_dir / 'checkpoint.pt'}: trial {row['trial_id']} has no checkpoint")
        config = trial_run_config(row, spec, results_dir, prepared_dir)
        chosen = row.get("uncertainty_threshold")  # on the trial's validation split
        threshold = {"threshold": str(chosen)} if chosen is not None and spec.evaluation.split == "val" else {}
        job = ExternalJob(spec.name, row["trial_id"], run_dir, config, folder.resolve(), layout, options | threshold)
        jobs.append(job)
    check_annotators(external_config(jobs[0].config, folder, layout))  # every trial shares data.*
    return jobs


def evaluate_job(job: ExternalJob) -> dict[str, Any]:
    """Evaluate one trial on the folder (runs in a Ray task or in-process); returns its `external` row."""
    from platform.evaluate import evaluate_run

    from rich.console import Console

    options = {**job.options, "external": str(job.folder), "layout": job.layout}
    summary = evaluate_run(job.run_dir, options, [], Console(quiet=True), config=job.config).row(0, named=True)
    row = {
        "study": job.study,
        "trial_id": job.trial_id,
        "folder": str(job.folder),
        "folder_name": job.folder.name,
        "layout": job.layout,
        "images": int(summary["images"]),
        "samples": int(summary["samples"]),
        "steps": int(options.get("steps", 20)),
        "uncertainty_threshold": float(summary["uncertainty_threshold"]),
        **{k: summary[k] for k in SUMMARY_METRICS},
        "images_path": str(job.run_dir / f"eval-external-{job.folder.name}" / "images.parquet"),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_table(pl.DataFrame([row]), job.shard)
    return row


def run_jobs(jobs: list[ExternalJob], cpus: float) -> list[dict[str, Any]]:
    """Every job as a Ray task of `cpus` CPUs (Ray must be initialised); rows in the jobs' order."""
    import ray

    task = ray.remote(num_cpus=cpus, max_retries=0)(_evaluate_with_threads)
    return ray.get([task.remote(job, max(1, int(cpus))) for job in jobs])


def _evaluate_with_threads(job: ExternalJob, threads: int) -> dict[str, Any]:
    config = dataclasses.replace(job.config, train=dataclasses.replace(job.config.train, threads=threads))
    return evaluate_job(dataclasses.replace(job, config=config))


DROP_METRICS = ("dice_nonempty", "dice", "iou", "ged", "ece", "brier")


def external_drops(results_dir: Path, external: pl.DataFrame, images: pl.DataFrame) -> pl.DataFrame:
    """Internal vs external per trial, folder and metric: both means, the change external − internal
    with its 95 % bootstrap CI (patients resampled on each side) and the Mann-Whitney p-value.

    external: the study's `external` rows; images: its `images` rows (the internal split)."""
    from platform.evaluation.statistics import independent_difference

    def with_nonempty(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.when(pl.col("foreground") > 0).then(pl.col("dice")).otherwise(None).alias("dice_nonempty")
        )

    parts = []
    for row in external.sort("trial_id", "folder_name").iter_rows(named=True):
        path = Path(row["images_path"])
        inside = images.filter(pl.col("trial_id") == row["trial_id"]) if images.height else images
        if not path.is_file() or inside.is_empty():
            continue
        table = independent_difference(
            with_nonempty(inside), with_nonempty(pl.read_parquet(path)), DROP_METRICS, cluster="group"
        )
        parts.append(
            table.rename(
                {
                    "mean_a": "internal",
                    "mean_b": "external",
                    "difference": "change",
                    "images_a": "images_internal",
                    "images_b": "images_external",
                }
            ).select(
                pl.lit(row["trial_id"]).alias("trial_id"),
                pl.lit(row["folder_name"]).alias("folder"),
                pl.all(),
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame()
