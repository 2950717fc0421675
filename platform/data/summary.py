"""A rich table of every prepared dataset: images, groups, splits, annotators, foreground; or, with
--splits DATASET, of one dataset's splits with how much its annotators agree.

Usage: python -m platform.data.summary [--prepared prepared] [--splits DATASET]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from platform.cli import run_command
from platform.data.loader import PreparedSplit
from platform.errors import UsageError
from platform.metrics import majority_vote

import numpy as np
import polars as pl
import torch
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


def agreement(masks: np.ndarray, chunk: int = 256) -> tuple[float, list[float]]:
    """For masks N×A×H×W (0/1): the share of images whose majority vote (at least half the
    annotators) is empty, and, of the pixels any annotator marks, the share marked by exactly k of
    them, k = 1..A. Splits of one dataset can differ here: on LIDC the test split's marked pixels
    are marked by all four annotators more often than validation's, which moves calibration
    metrics between the two (BENCHMARKS.md)."""
    annotators = masks.shape[1]
    counts = np.zeros(annotators + 1, np.int64)
    empty = 0
    for start in range(0, len(masks), chunk):  # memory-mapped rows, a chunk at a time
        rows = torch.from_numpy(np.array(masks[start : start + chunk], dtype=np.uint8))  # copied: mmap is read-only
        counts += np.bincount(rows.sum(1, dtype=torch.int64).flatten().numpy(), minlength=annotators + 1)
        empty += int((~majority_vote(rows).flatten(1).any(1)).sum())
    marked = counts[1:].sum()
    shares = (counts[1:] / marked).tolist() if marked else [float("nan")] * annotators
    return empty / len(masks), shares


def summarise_splits(dataset_dir: Path) -> pl.DataFrame:
    """One row per split of `dataset_dir` (train, val, test): images, groups, annotators marking an
    image (mean), foreground, empty-consensus share, and `marked_by` (see `agreement`)."""
    manifest_file = dataset_dir / "manifest.parquet"
    if not manifest_file.is_file():
        raise UsageError(f"{dataset_dir}: no prepared dataset there (run `dvc repro` first)")
    manifest = pl.read_parquet(manifest_file)
    rows = []
    for split in ("train", "val", "test"):
        part = manifest.filter(pl.col("split") == split)
        if part.is_empty():
            continue
        empty, shares = agreement(PreparedSplit.open(dataset_dir, split).masks)
        rows.append(
            {
                "split": split,
                "images": part.height,
                "groups": part["group"].n_unique(),
                "mean_marking": float(part["annotators_marking"].mean()),  # type: ignore[arg-type]
                "foreground": float(part["foreground_fraction"].mean()),  # type: ignore[arg-type]
                "empty_consensus": empty,
                "marked_by": shares,
            }
        )
    return pl.DataFrame(rows)


def render_splits(name: str, splits: pl.DataFrame, console: Console) -> None:
    annotators = len(splits["marked_by"][0])
    table = Table(title=f"{name}: splits")
    columns = ["split", "images", "groups", "marking", "foreground", "empty consensus"]
    if annotators > 1:
        columns += [f"{k}/{annotators}" for k in range(1, annotators + 1)]
    for column in columns:
        table.add_column(column, justify="left" if column == "split" else "right")
    for r in splits.iter_rows(named=True):
        cells = [r["split"], str(r["images"]), str(r["groups"]), f"{r['mean_marking']:.2f}"]
        cells += [f"{100 * r['foreground']:.2f} %", f"{100 * r['empty_consensus']:.0f} %"]
        if annotators > 1:
            cells += [f"{100 * share:.0f} %" for share in r["marked_by"]]
        table.add_row(*cells)
    console.print(table)
    print("marking = mean number of annotators who marked foreground on an image;")
    agreement_note = "; k/A = marked pixels marked by k of A annotators" if annotators > 1 else ""
    print(f"empty consensus = images that no majority of annotators marks{agreement_note}")


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
    parser.add_argument("--splits", metavar="DATASET", help="one dataset's splits and its annotators' agreement")
    args = parser.parse_args(argv)

    def body(console: Console) -> int:
        if args.splits:
            render_splits(args.splits, summarise_splits(args.prepared / args.splits), console)
            return 0
        summary = summarise(args.prepared)
        if summary.is_empty():
            raise UsageError(f"{args.prepared}: no prepared dataset (run `dvc repro` first)")
        render(summary, console)
        print("marking = mean number of annotators who marked foreground on an image")
        return 0

    return run_command(body, Console(width=None if sys.stdout.isatty() else 100))


if __name__ == "__main__":
    sys.exit(main())
