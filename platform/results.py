"""Results tables of studies: one Parquet file per trial and table, written atomically; SQL over them.

Layout: results/<study>/{trials,images,curves}/<trial_id>.parquet and external/<trial_id>--<folder>.parquet.
No file has two writers and every write is a rename, so concurrent studies, a dead driver or a
reader mid-write never see a torn row."""

from __future__ import annotations

import io
from pathlib import Path
from platform.atomic import atomic_write
from platform.errors import UsageError
from platform.evaluation.registry import CODEC_METRICS, SUMMARY_METRICS
from typing import Any

import polars as pl

TABLES = ("trials", "images", "curves", "external")  # external: platform/study_external.py

# Columns every `trials` row has (searched parameters are added as their own typed columns).
TRIAL_SCHEMA: dict[str, Any] = {
    "study": pl.Utf8,
    "trial_id": pl.Utf8,  # one run: the Tune trial id, with `-r<k>` when the spec repeats configurations
    "tune_trial_id": pl.Utf8,
    "seed": pl.Int64,
    "status": pl.Utf8,
    "failure": pl.Utf8,
    **{name: pl.Float64 for name in (*SUMMARY_METRICS, *CODEC_METRICS)},
    "uncertainty_threshold": pl.Float64,  # bits, of the threshold-mean score, chosen on validation
    "wall_s": pl.Float64,
    "train_s": pl.Float64,
    "eval_s": pl.Float64,
    "epochs": pl.Float64,
    "steps": pl.Int64,
    "restarts": pl.Int64,
    "reused_stages": pl.List(pl.Utf8),  # stages loaded from the stage store instead of trained
    "reused_s": pl.Float64,  # the training time those stages cost where they were trained
    "workers": pl.Int64,
    "node_ids": pl.Utf8,
    "checkpoint": pl.Utf8,
    "git_commit": pl.Utf8,
    "data_version": pl.Utf8,
    "started_at": pl.Utf8,
    "finished_at": pl.Utf8,
}


def write_table(frame: pl.DataFrame, path: Path) -> Path:
    """Write `frame` to `path` atomically. Raises UsageError naming the path."""
    return atomic_write(path, frame.write_parquet)


def trial_frame(row: dict[str, Any], parameter_types: dict[str, Any]) -> pl.DataFrame:
    """One `trials` row: the fixed schema, then one typed `p_<name>` column per searched parameter
    (null where a conditional parameter did not apply), so every shard of a study has one schema."""
    fixed = [pl.Series(k, [row.get(k)], dtype=dtype) for k, dtype in TRIAL_SCHEMA.items()]
    params = [pl.Series(k, [row.get(k)], dtype=dtype) for k, dtype in parameter_types.items()]
    return pl.DataFrame([*fixed, *params])


def shards(results: Path, table: str, study: str | None = None) -> list[Path]:
    if table not in TABLES:
        raise UsageError(f"table {table!r}: not one of {', '.join(TABLES)}")
    return sorted(results.glob(f"{study or '*'}/{table}/*.parquet"))


def scan(results: Path, table: str, study: str | None = None) -> pl.LazyFrame:
    """All shards of `table` under `results/` (one study, or every study), as one lazy frame.

    Each shard is read whole in one open: a lazy `scan_parquet` reads metadata and pages in
    separate opens, and a trial replacing its shard in between gives a torn read."""
    files = shards(results, table, study)
    if not files:
        return pl.LazyFrame()
    frames = [pl.read_parquet(io.BytesIO(f.read_bytes())).lazy() for f in files]
    return pl.concat(frames, how="diagonal_relaxed")


def query(results: Path, sql: str, study: str | None = None) -> pl.DataFrame:
    """Run SQL over the tables `trials`, `images`, `curves` and `external` (those that have rows).

    Raises UsageError on bad SQL or a table without rows yet."""
    present = {name: scan(results, name, study) for name in TABLES if shards(results, name, study)}
    context = pl.SQLContext(present)
    try:
        return context.execute(sql).collect()
    except (pl.exceptions.PolarsError, ValueError) as exc:
        empty = [name for name in TABLES if name not in present]
        hint = f" (no rows yet in: {', '.join(empty)} under {results})" if empty else ""
        raise UsageError(f"query failed: {str(exc).splitlines()[0]}{hint}") from None
