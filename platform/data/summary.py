"""A rich table of every prepared dataset: images, groups, splits, annotators, foreground.

Usage: python -m platform.data.summary [--prepared prepared]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from platform.cli import run_command
from platform.errors import UsageError

import polars as pl
from rich.console import Console
from rich.table import Table


def summarise(prepared: Path) -> pl.DataFrame:
    """One row per dataset under `prepared/` (folders holding a manifest.parquet)."""
    manifests = sorted(prepared.glob("*/manifest.parquet"))
    frames = [pl.read_parquet(m).with_columns(pl.lit(m.parent.name).alias("dataset")) for m in manifests]
    if not frames:
        return pl.DataFrame()
    rows = pl.concat(frames, how="diagonal")
    return (
        rows.group_by("dataset")
        .agg(
            pl.len().alias("images"),
            pl.col("group").n_unique().alias("groups"),
            (pl.col("split") == "train").sum().alias("train"),
            (pl.col("split") == "val").sum().alias("val"),
            (pl.col("split") == "test").sum().alias("test"),
            pl.col("annotators").max().alias("annotators"),
            pl.col("annotators_marking").mean().alias("mean_marking"),
            pl.col("foreground_fraction").mean().alias("foreground"),
            pl.col("height").first().alias("size"),
        )
        .sort("dataset")
    )


def render(summary: pl.DataFrame, console: Console) -> None:
    table = Table(title="Prepared datasets")
    for column, justify in [
        ("dataset", "left"),
        ("images", "right"),
        ("groups", "right"),
        ("train/val/test", "right"),
        ("annotators", "right"),
        ("marking", "right"),
        ("foreground", "right"),
        ("size", "right"),
    ]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in summary.iter_rows(named=True):
        table.add_row(
            r["dataset"],
            str(r["images"]),
            str(r["groups"]),
            f"{r['train']}/{r['val']}/{r['test']}",
            str(r["annotators"]),
            f"{r['mean_marking']:.2f}",
            f"{100 * r['foreground']:.2f} %",
            f"{r['size']}×{r['size']}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.data.summary", description=__doc__)
    parser.add_argument("--prepared", type=Path, default=Path("prepared"))
    args = parser.parse_args(argv)

    def body(console: Console) -> int:
        summary = summarise(args.prepared)
        if summary.is_empty():
            raise UsageError(f"{args.prepared}: no prepared dataset (run `dvc repro` first)")
        render(summary, console)
        print("marking = mean number of annotators who marked foreground on an image")
        return 0

    return run_command(body, Console(width=None if sys.stdout.isatty() else 100))


if __name__ == "__main__":
    sys.exit(main())
