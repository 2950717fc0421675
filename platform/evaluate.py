"""Evaluate a trained run's sample ensembles, or compare two evaluated runs.

  python -m platform.evaluate run=runs/<name> [data=<dataset>] [split=val|test] [samples=16] [steps=20]
                                  [images=N] [radius=8] [bins=10] [batch=8] [seed=0] [threshold=<bits>]
                                  [data.<key>=...] [model.<sampling key>=...]
  python -m platform.evaluate run=runs/<name> external=<folder> layout=<layout> [samples=16] [steps=20] [images=N]
  python -m platform.evaluate compare runs/<a> runs/<b> [split=test] [cluster=group]
  python -m platform.evaluate compare 'runs/<a>-seed*' 'runs/<b>-seed*' [split=test] [cluster=group]
  python -m platform.evaluate compare runs/<a>/eval-test 'runs/<b>/eval-test-<key>=<value>' [cluster=group]

`model.guidance_scale=`, `model.prior_strength=`, `model.prior_threshold=`,
`model.prior_threshold_spread=`, `model.tta=`, `model.binary_samples=`,
`model.majority_at_threshold=` and (UNet) `model.threshold_spread=` change only how the trained
run samples; such an evaluation goes to <run>/eval-<split>-<key>=<value>/, beside the plain one.
`external=` evaluates every image of a folder in a supported layout (lidc_crops, folder_pairs,
isic2018, cvc_clinicdb, ...), resized as `prepare` does and normalised with the run's training
statistics, into <run>/eval-external-<folder name>/ (same files; `source` names each image's file).
The threshold-mean uncertainty score uses a threshold chosen on the validation split (`split=val`
chooses and stores it; test and external evaluations reuse it; `threshold=` sets one). `run` writes
<run>/eval-<split>/: images.parquet (one row per image, config values as columns),
summary.parquet, reliability.parquet, presence.parquet (images grouped by the share of annotators
marking anything: the share of samples that do, Dice, per-image ECE; printed when that share
varies) and PNG figures (reliability diagram, confidence-map panels, uncertainty maps beside the
raters' disagreement, risk–coverage curves, Dice and ECE histograms).
ECE is the positive-class binned ECE of the confidence map (mean of the N samples: sampled masks,
or the decoder's soft outputs with `model.binary_samples=false`) against the annotators' majority
vote; `ece_border` restricts it to pixels within `radius` px of any annotation. `compare` prints
and saves (in <b>/eval-<split>/) bootstrap CIs of the mean difference b − a in Dice, ECE, Brier
and `presence_error` (when both evaluations have it), resampling images or, with `cluster=group`,
patients, plus Wilcoxon signed-rank p-values; its `ece` is the mean of per-image ECEs, and
`ece_pooled` the evaluation's own pixel-pooled ECE, recomputed on every resample from per-image bin
sums (no rank test: one number per side).
Quoted glob patterns pool several seeds: run a with seed s is paired with run b with seed s,
every seed on both sides, and a patient is drawn with its slices from every seed (saved as
compare-<first a>-seeds<s...>.parquet). A side may name evaluation folders instead of runs (a
sampling variant's eval-test-<key>=<value>/, say): then `split` does not apply to it."""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from pathlib import Path
from platform.build import SAMPLING_ONLY
from platform.cli import run_command
from platform.config import load_config, load_run_config
from platform.config_types import Config
from platform.data.layouts import LAYOUTS
from platform.errors import UsageError
from platform.evaluation.ensembles import EvaluationSettings
from platform.evaluation.external import EXTERNAL_SPLIT, external_config, prepare_external, training_stats
from platform.evaluation.figures import (
    confidence_panels,
    metric_histograms,
    reliability_diagram,
    risk_coverage,
    uncertainty_panels,
)
from platform.evaluation.presence import presence_table
from platform.evaluation.registry import BY_NAME, SUMMARY_METRICS, format_cell
from platform.evaluation.run_pairs import evaluation_folder, expand_runs, paired_tables, run_label
from platform.evaluation.runs import evaluate_checkpoint
from platform.evaluation.statistics import paired_comparison, with_dice_nonempty
from platform.results import write_table

import polars as pl
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

RUN_KEYS = {
    "run",
    "data",
    "split",
    "samples",
    "steps",
    "images",
    "radius",
    "bins",
    "batch",
    "seed",
    "external",
    "layout",
    "threshold",
}


def parse_pairs(tokens: list[str], allowed: set[str]) -> tuple[dict[str, str], list[str]]:
    """`key=value` tokens → (known keys, config overrides: `data.*` and the sampling-only model keys).

    Raises UsageError otherwise."""
    known, overrides = {}, []
    keys = f"keys: {', '.join(sorted(allowed))}, data.<key>, {', '.join(SAMPLING_ONLY)}"
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            raise UsageError(f"'{token}': expected key=value ({keys})")
        if key.startswith("data.") or key in SAMPLING_ONLY:
            overrides.append(token)
        elif key in allowed:
            known[key] = value
        else:
            raise UsageError(f"'{key}': unknown key ({keys})")
    return known, overrides


def sampling_suffix(overrides: list[str]) -> str:
    """`-prior_threshold_spread=0.5` for sampling-only overrides: a variant never overwrites eval-<split>/."""
    return "".join(f"-{o.removeprefix('model.')}" for o in overrides if o.partition("=")[0] in SAMPLING_ONLY)


def _int(options: dict[str, str], key: str, default: int, minimum: int) -> int:
    try:
        value = int(options.get(key, default))
    except ValueError:
        raise UsageError(f"{key}={options[key]!r}: not an integer") from None
    if value < minimum:
        raise UsageError(f"{key}={value}: must be ≥ {minimum}")
    return value


def config_columns(config: Config, state: dict, split: str, run_name: str) -> dict[str, object]:
    m = config.model
    return {
        "run": run_name,
        "dataset": config.data.name,
        "split": split,
        "model": m.kind,
        "conditioning": m.mode if m.kind != "unet" else "none",
        "latent_factor": m.latent_factor if m.kind == "medseglatdiff" else 1,
        "latent_channels": m.latent_channels if m.kind == "medseglatdiff" else 1,
        "wce_weight": float(state["wce_weight"]),
        "adaptive_wce": m.adaptive_wce,
        "guidance_scale": m.effective_guidance_scale if m.guidance else None,
        "prediction": m.prediction,
        "seed": config.train.seed,
    }


def evaluate_run(
    run_dir: Path, options: dict[str, str], overrides: list[str], console: Console, config: Config | None = None
) -> pl.DataFrame:
    """Evaluate one run folder (its saved config.yaml, or `config`); returns its one-row summary
    table (also written to disk)."""
    config = config or load_run_config(run_dir / "config.yaml", overrides)
    if "data" in options:  # evaluate on another dataset (same image size and channels)
        other = load_config(
            [
                f"data={options['data']}",
                f"data.image_size={config.data.image_size}",
                *[o for o in overrides if o.startswith("data.")],
            ]
        ).data
        config = dataclasses.replace(config, data=other)
    split = options.get("split", "val")
    if split not in ("train", "val", "test"):
        raise UsageError(f"split={split!r}: must be train, val or test")
    suffix = sampling_suffix(overrides)
    out = run_dir / f"eval-{split}{suffix}"
    scratch = None
    if "external" in options:
        if "layout" not in options:
            raise UsageError(f"external={options['external']} needs layout=<{'|'.join(LAYOUTS)}>")
        folder = Path(options["external"])
        external = external_config(config, folder, options["layout"])
        out = run_dir / f"eval-external-{folder.resolve().name}{suffix}"
        config, scratch = prepare_external(external, run_dir, out, training_stats(run_dir, config))
        split = EXTERNAL_SPLIT
    elif "layout" in options:
        raise UsageError("layout= is only used with external=<folder>")
    try:
        return _evaluate_into(config, run_dir, split, options, out, console, suffix)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _evaluate_into(
    config: Config, run_dir: Path, split: str, options: dict[str, str], out: Path, console: Console, suffix: str
) -> pl.DataFrame:
    settings = EvaluationSettings(
        uncertainty_threshold=uncertainty_threshold(run_dir, split, options, suffix),
        samples=_int(options, "samples", 16, 1),
        steps=_int(options, "steps", 20, 1),
        batch_size=_int(options, "batch", 8, 1),
        seed=_int(options, "seed", 0, 0),
        bins=_int(options, "bins", 10, 2),
        border_radius=_int(options, "radius", 8, 0),
        max_images=_int(options, "images", 10**9, 1),
    )
    torch.set_num_threads(config.train.threads)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"sampling {settings.samples}× per image", total=None)
        result, images, state = evaluate_checkpoint(
            config, run_dir, split, settings, lambda done, total: bar.update(task, completed=done, total=total)
        )
    columns = config_columns(config, state, split, run_dir.name)
    images = images.with_columns(*[pl.lit(v).alias(k) for k, v in columns.items()])
    summary = pl.DataFrame([{**columns, **result.summary}])
    presence = presence_table(images)
    tables = (("images", images), ("summary", summary), ("reliability", result.reliability), ("presence", presence))
    for name, frame in tables:
        write_table(frame, out / f"{name}.parquet")
    reliability_diagram(result.reliability, out / "reliability.png", f"{run_dir.name} ({split})")
    if result.panels:
        confidence_panels(result.panels, out / "panels.png")
        uncertainty_panels(result.panels, out / "uncertainty.png")
    risk_coverage(images, out / "risk_coverage.png", f"{run_dir.name} ({split})")
    metric_histograms(images, out / "histograms.png")
    if presence.height > 1:  # the raters' agreement varies: how each level of it is sampled
        render_presence(presence, console, summary["samples"][0])
    return summary


def uncertainty_threshold(run_dir: Path, split: str, options: dict[str, str], suffix: str = "") -> float | None:
    """The threshold (bits) of the threshold-mean uncertainty score: `threshold=` when given; on the
    validation split None (chosen there); elsewhere the one the run's validation evaluation with the
    same sampling overrides (`suffix`) chose, else 0.5 (evaluate `split=val` first to have one)."""
    if "threshold" in options:
        try:
            value = float(options["threshold"])
        except ValueError:
            raise UsageError(f"threshold={options['threshold']!r}: not a number (bits, 0-1)") from None
        if not 0 <= value < 1:
            raise UsageError(f"threshold={value}: must be in [0, 1) bits")
        return value
    if split == "val":  # an external folder is evaluated as split test
        return None
    chosen = run_dir / f"eval-val{suffix}" / "summary.parquet"
    if chosen.is_file() and "uncertainty_threshold" in (frame := pl.read_parquet(chosen)).columns:
        return float(frame["uncertainty_threshold"][0])
    return 0.5


def compare_runs(run_a: Path | str, run_b: Path | str, options: dict[str, str]) -> pl.DataFrame:
    """Paired comparison b − a; each side a run folder or a glob pattern of runs paired by seed."""
    split = options.get("split", "val")
    side_a, side_b = expand_runs(str(run_a)), expand_runs(str(run_b))
    a, b, seeds = paired_tables(side_a, side_b, split)
    cluster = options.get("cluster")
    if cluster and cluster not in a.columns:
        raise UsageError(f"cluster={cluster!r}: not a column of the images table")
    # dice_nonempty first when some slices have an empty consensus (LIDC): there overall Dice
    # rewards predicting nothing.
    a, b = with_dice_nonempty(a), with_dice_nonempty(b)
    metrics: tuple[str, ...] = ("dice", "ece", "brier")
    if a["dice_nonempty"].null_count() > 0:
        metrics = ("dice_nonempty", *metrics)
    if "presence_error" in a.columns and "presence_error" in b.columns:  # evaluations since it exists
        metrics = (*metrics, "presence_error")
    table = paired_comparison(a, b, metrics, cluster=cluster)
    names_a, names_b = (",".join(run_label(r) for r in side) for side in (side_a, side_b))
    pooled = f"-seeds{'-'.join(map(str, seeds))}" if seeds else ""
    table = table.with_columns(
        pl.lit(names_a).alias("run_a"), pl.lit(names_b).alias("run_b"), pl.lit(len(seeds) or 1).alias("seeds")
    )
    name = run_label(side_a[0]).replace("/", "-")
    write_table(table, evaluation_folder(side_b[0], split) / f"compare-{name}{pooled}.parquet")
    return table


def render_summary(summary: pl.DataFrame, console: Console) -> None:
    row = summary.row(0, named=True)
    table = Table(
        title=f"{row['run']} · {row['dataset']}/{row['split']} · {int(row['images'])} images × "
        f"{int(row['samples'])} samples"
    )
    for column in ("metric", "value"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in SUMMARY_METRICS:
        table.add_row(key, format_cell(row[key], key))
    console.print(table)


def render_presence(presence: pl.DataFrame, console: Console, samples: float) -> None:
    table = Table(title=f"by annotators marking anything · share of {int(samples)} samples marking anything")
    for column in ("annotators marking", "images", "samples marking", "mean mask marks", "Dice", "ECE (per image)"):
        table.add_column(column, justify="right")
    for r in presence.iter_rows(named=True):
        table.add_row(
            f"{r['raters_marking']:.2f}",
            str(int(r["images"])),
            f"{r['samples_marking']:.2f}",
            f"{r['mask_marks']:.2f}",
            f"{r['dice']:.3f}",
            f"{r['ece']:.5f}",
        )
    console.print(table)


def render_comparison(table: pl.DataFrame, console: Console, a: str, b: str) -> None:
    seeds = int(table["seeds"][0])  # compare_runs always records it (1 for a single pair)
    pooled = f", {seeds} seeds pooled" if seeds > 1 else ""
    out = Table(title=f"{b} − {a} (paired{pooled}, 95 % bootstrap CI)")
    for column in ("metric", "mean a", "mean b", "difference", "95 % CI", "Wilcoxon p", "pairs"):
        out.add_column(column, justify="right")
    for r in table.iter_rows(named=True):
        entry = BY_NAME.get(r["metric"].removesuffix("_pooled"))  # ece_pooled shows as ece does
        d = entry.digits if entry else 4
        out.add_row(
            r["metric"],
            f"{r['mean_a']:.{d}f}",
            f"{r['mean_b']:.{d}f}",
            f"{r['difference']:+.{d}f}",
            f"[{r['ci_low']:+.{d}f}, {r['ci_high']:+.{d}f}]",
            "–" if math.isnan(r["wilcoxon_p"]) else f"{r['wilcoxon_p']:.3g}",
            str(r["pairs"]),
        )
    console.print(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2

    def body(console: Console) -> int:
        if argv[0] == "compare":
            # a key=value option has no "/" before its "=", a folder may have one after it
            runs = [t for t in argv[1:] if "/" in t.partition("=")[0] or "=" not in t]
            if len(runs) != 2:
                raise UsageError(
                    f"compare takes two run folders or two quoted patterns ('runs/<a>-seed*'), got {len(runs)}: "
                    + " ".join(runs)
                )
            options, _ = parse_pairs([t for t in argv[1:] if t not in runs], {"split", "cluster"})
            table = compare_runs(runs[0], runs[1], options)
            render_comparison(table, console, run_label(Path(runs[0])), run_label(Path(runs[1])))
            return 0
        options, overrides = parse_pairs(argv, RUN_KEYS)
        if "run" not in options:
            raise UsageError("run=<run folder> is required")
        render_summary(evaluate_run(Path(options["run"]), options, overrides, console), console)
        return 0

    return run_command(body, Console())


if __name__ == "__main__":
    sys.exit(main())
