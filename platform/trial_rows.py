"""The rows a trial writes: `trials` (one row, rewritten as the trial goes), `images` and `curves`.

Every shard is this trial's own file, written atomically; the driver never writes rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from platform.checkpoint import load_checkpoint
from platform.results import trial_frame, write_table
from platform.spec import StudySpec, parameter_column
from typing import Any

import polars as pl


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TrialRows:
    """Writes results/<study>/{trials,curves}/<trial_id>.parquet for one trial."""

    def __init__(self, spec: StudySpec, results: Path, trial_id: str, base: dict[str, Any]) -> None:
        self.spec, self.results, self.trial_id = spec, results, trial_id
        self.columns = spec.parameter_columns()
        self.base = base

    @classmethod
    def start(
        cls, spec: StudySpec, results: Path, trial_id: str, params: dict[str, Any], provenance: dict[str, Any]
    ) -> TrialRows:
        base = {
            "study": spec.name,
            "trial_id": trial_id,
            "started_at": now(),
            **provenance,
            "workers": spec.resources.workers,
            **{parameter_column(k): v for k, v in params.items()},
        }
        rows = cls(spec, results, trial_id, base)
        rows.write({"status": "running"})
        return rows

    @property
    def path(self) -> Path:
        return self.results / "trials" / f"{self.trial_id}.parquet"

    def write(self, values: dict[str, Any]) -> dict[str, Any]:
        row = {**self.base, **values}
        write_table(trial_frame(row, self.columns), self.path)
        return row

    def failed(self, values: dict[str, Any], failure: str) -> dict[str, Any]:
        """Write the failed row, unless the driver already marked it pruned: a trial the scheduler
        stops loses its Train workers first, and fails for that alone before it is killed."""
        if self.path.is_file() and (row := pl.read_parquet(self.path).row(0, named=True))["status"] == "pruned":
            return row
        return self.write({**values, "status": "failed", "failure": failure, "finished_at": now()})

    def completed(self, values: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        state = load_checkpoint(run_dir / "checkpoint.pt")["state"]
        curves = training_curves(state["metrics"], self.spec.name, self.trial_id)
        write_table(curves, self.results / "curves" / f"{self.trial_id}.parquet")
        return self.write(
            {
                **values,
                "status": "completed",
                "failure": "",
                "reused_stages": state.get("reused", []),
                "reused_s": state.get("reused_s", 0.0),
                "epochs": float(curves["epoch"].to_numpy().max()) if curves.height else 0.0,
                "steps": int(curves["step"].to_numpy().max()) if curves.height else 0,
                "finished_at": now(),
            }
        )


def mark_pruned(spec: StudySpec, results: Path, tune_id: str, last: dict[str, Any]) -> list[str]:
    """Rewrite the unfinished rows of a Tune trial the scheduler stopped as `pruned`, with the
    stage, step and pruning metric of its last report. The driver calls this: the stopped trial's
    process is gone and cannot. A `failed` row counts as unfinished: stopping a trial removes its
    Train workers first, and the trial may record that as its failure before it is killed (a trial
    that fails on its own ends in Tune's on_trial_error, never here). Returns the run ids it marked."""
    marked = []
    for path in sorted((results / "trials").glob(f"{tune_id}*.parquet")):
        row = pl.read_parquet(path).row(0, named=True)
        if row["status"] not in ("running", "failed") or row.get("tune_trial_id", row["trial_id"]) != tune_id:
            continue
        metric = spec.pruning.metric
        where = f"{last.get('stage', '?')} step {last.get('step', '?')}"
        value = f": {metric} {last[metric]:.4f}" if isinstance(last.get(metric), float) else ""
        row |= {
            "status": "pruned",
            "failure": f"pruned by {spec.pruning.kind} at {where}{value}",
            "steps": last.get("step"),
            "finished_at": now(),
        }
        write_table(trial_frame(row, spec.parameter_columns()), path)
        marked.append(row["trial_id"])
    return marked


def completed_row(path: Path) -> dict[str, Any] | None:
    """The row of a trial that already completed (its shard says so), else None."""
    if not path.is_file():
        return None
    row = pl.read_parquet(path).row(0, named=True)
    return row if row["status"] == "completed" else None


def objective_values(row: dict[str, Any], spec: StudySpec) -> dict[str, float]:
    """What the trial reports to Tune/Optuna: each objective's value from its row."""
    return {o.metric: float(row[o.metric]) for o in spec.objectives}


def training_curves(metrics: list[dict[str, Any]], study: str, trial_id: str) -> pl.DataFrame:
    """One row per logged training step (a checkpoint state's metrics), tagged with study and trial."""
    frame = (
        pl.DataFrame(metrics)
        if metrics
        else pl.DataFrame(schema={"stage": pl.Utf8, "step": pl.Int64, "epoch": pl.Float64, "loss": pl.Float64})
    )
    return frame.with_columns(pl.lit(study).alias("study"), pl.lit(trial_id).alias("trial_id"))
