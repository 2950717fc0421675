"""Which evaluated runs a comparison pairs: one run against one, or several seeds against the same seeds.

One seed per model is a weak answer: on LIDC test the paired difference in `dice_nonempty` ranged
from −0.015 to +0.041 over four seeds of the same two configurations. "Is b better than a" is
answered by pooling paired seeds: run a with seed s against run b with seed s, over every seed."""

from __future__ import annotations

import glob
from pathlib import Path
from platform.errors import UsageError

import polars as pl

GLOB_CHARACTERS = "*?["


def expand_runs(pattern: str) -> list[Path]:
    """A run (or evaluation) folder, or a quoted glob pattern of them (`'runs/lidc-unet-seed*'`), sorted."""
    if not any(c in pattern for c in GLOB_CHARACTERS):
        return [Path(pattern)]
    runs = sorted(Path(p) for p in glob.glob(pattern) if Path(p).is_dir())
    if not runs:
        raise UsageError(f"{pattern!r}: no run folder matches")
    return runs


def evaluation_folder(run: Path, split: str) -> Path:
    """A run's eval-<split>/, or the folder itself when it is one evaluation (a sampling variant's
    eval-test-binary_samples=true/, say)."""
    return run if run.name.startswith("eval-") else run / f"eval-{split}"


def run_label(run: Path) -> str:
    """The run's name; for an evaluation folder, its run's name and the folder's."""
    return f"{run.parent.name}/{run.name}" if run.name.startswith("eval-") else run.name


def evaluated_images(run: Path, split: str) -> pl.DataFrame:
    path = evaluation_folder(run, split) / "images.parquet"
    if not path.is_file():
        raise UsageError(f"{path}: not evaluated yet (python -m platform.evaluate run={run} split={split})")
    return pl.read_parquet(path)


def paired_tables(side_a: list[Path], side_b: list[Path], split: str) -> tuple[pl.DataFrame, pl.DataFrame, list[int]]:
    """Per-image tables of both sides, ready for `paired_comparison`, and the seeds paired.

    One run a side: its images as they are (seeds []). Several: each side's runs must have distinct
    training seeds, the same ones on both sides; image ids become `seed<s>/<id>` so that run a
    seed s pairs with run b seed s, image by image, while the patient (`group`) stays the cluster a
    bootstrap draws whole, across seeds (one patient's slices are never independent)."""
    if len(side_a) == 1 and len(side_b) == 1:
        return evaluated_images(side_a[0], split), evaluated_images(side_b[0], split), []
    by_seed_a, by_seed_b = _by_seed(side_a, split), _by_seed(side_b, split)
    if set(by_seed_a) != set(by_seed_b):
        only = sorted(set(by_seed_a) ^ set(by_seed_b))
        lonely = [str(r[0]) for s in only for r in (by_seed_a.get(s), by_seed_b.get(s)) if r is not None]
        raise UsageError(f"seed(s) {only} on one side only ({', '.join(lonely)}): pair every run with the same seed")
    seeds = sorted(by_seed_a)
    tables = []
    for by_seed in (by_seed_a, by_seed_b):
        frames = [by_seed[s][1].with_columns((f"seed{s}/" + pl.col("id")).alias("id")) for s in seeds]
        tables.append(pl.concat(frames, how="diagonal_relaxed"))
    return tables[0], tables[1], seeds


def _by_seed(runs: list[Path], split: str) -> dict[int, tuple[Path, pl.DataFrame]]:
    """Each run and its images by the run's training seed (the `seed` column every evaluation
    records), checked distinct."""
    found: dict[int, tuple[Path, pl.DataFrame]] = {}
    for run in runs:
        images = evaluated_images(run, split)
        if "seed" not in images.columns or images["seed"].n_unique() != 1:
            raise UsageError(f"{evaluation_folder(run, split)}/images.parquet: no single training seed to pair by")
        seed = int(images["seed"][0])
        if seed in found:
            raise UsageError(f"{found[seed][0]} and {run} both have seed {seed}: one run per seed a side")
        found[seed] = (run, images)
    return found
