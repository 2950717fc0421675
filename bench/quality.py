"""Quality at an equal CPU wall-clock budget: MedSegLatDiff (default and ablations) vs the UNet baseline.

LIDC-IDRI crops at 128 px (patient-level splits, 4 annotators) and PH2 at 128 px. Every model
gets the same training wall-clock budget (--minutes, 2 threads): two 40-step calibration runs
measure each stage's wall seconds per step and the run's fixed seconds (fitting, the final quick
validation), and what is left is split over the stages by fixed shares (`SHARES`; nothing else may
run meanwhile, or the calibration shrinks every step budget).
Ablations (the default with one technique switched off) are evaluated on the
validation split only (tuning); the UNet and the default on validation and test (reporting;
nothing is chosen on test). The UNet is also evaluated with its map thresholded at 16 nested
levels (`unet-spread` rows): no retraining, the latent model's spread rule with the spread fitted
the same way (`unet_spread`: GED on the validation split, models/thresholds.py).
Evaluation: 16 samples, 20 DDIM steps; ms per sampled mask at 10
and 20 DDIM steps; the paired difference latent − UNet in Dice on non-empty slices, resampling
patients. Usage (from the repository root, after `dvc repro`):

  python -m bench.quality [--minutes 5] [--quick] [--ablations] [--seed 1]
  python -m bench.quality --speed runs/bench-quality/lidc-ldm   (sampling time only)
  python -m bench.quality --datasets lidc --variants ldm-before --shares 0.25,0.45,0.30 --splits val   (tuning)"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from platform.config import load_config
from platform.data.loader import PreparedSplit
from platform.evaluate import evaluate_run
from platform.evaluation.registry import SUMMARY_METRICS
from platform.evaluation.statistics import paired_comparison
from platform.train import run as train_run

import polars as pl
import torch
from rich.console import Console

from models.thresholds import best_spread

RUNS = Path("runs/bench-quality")
BASE = ["train.batch_size=16", "train.log_every=5", "train.eval_images=8", "train.threads=2"]
ALL_T = ["model.truncate_timesteps=false"]
LDM = ["model=medseglatdiff"]
VARIANTS = {  # name → overrides on top of the shipped defaults
    "unet": ["model=unet"],
    "unet-w50": ["model=unet", "model.wce_weight=50"],
    "unet-constant-lr": ["model=unet", "train.lr_schedule=constant"],
    "ldm": LDM,
    "ldm-no-prior": [*LDM, "model.prior=false", "model.prior_strength=1.0", *ALL_T],
    "ldm-from-noise": [*LDM, "model.prior_strength=1.0", *ALL_T],
    "ldm-threshold-0.5": [*LDM, "model.prior_threshold=0.5"],
    "ldm-all-timesteps": [*LDM, *ALL_T],
    "ldm-whole-masks": [*LDM, "model.ae_crop=0"],
    "ldm-constant-lr": [*LDM, "train.lr_schedule=constant"],
    "ldm-no-foreground": [*LDM, "train.foreground_share=0.0"],
    "ldm-no-augment": [*LDM, "train.augment=false"],
    "ldm-x0-loss": [*LDM, "model.x0_loss_weight=0.1"],
    # The defaults before this last tuning round (BENCHMARKS.md), with --shares 0.25,0.45,0.30
    "ldm-before": [
        "model=medseglatdiff",
        "train.lr_schedule=constant",
        "model.ae_crop=0",
        "model.prior_threshold=0.5",
        *ALL_T,
    ],
}
# The default with one technique switched off at a time, and the UNet as the bar (`--ablations`).
# unet-w50 and unet-constant-lr were measured once (BENCHMARKS.md); ldm-x0-loss is an option, not
# part of the default; ldm-threshold-0.5 needs no training of its own (`bench.prior_check` scores
# the default's prior at fixed thresholds).
ABLATIONS = [
    "unet",
    "ldm",
    "ldm-no-prior",
    "ldm-from-noise",
    "ldm-all-timesteps",
    "ldm-whole-masks",
    "ldm-constant-lr",
    "ldm-no-foreground",
    "ldm-no-augment",
]
# Share of the wall-clock budget per stage (each stage's step key gets share·budget / s_per_step).
# "<kind>-<dataset>" overrides "<kind>" for one dataset: LIDC's 13-50 px nodules survive the mask
# autoencoder in every seed only with twice its PH2 steps, taken from the denoiser, which adds no
# detection of its own (BENCHMARKS.md, "An autoencoder that keeps small nodules"). LIDC's shares are
# the shipped budget's (1440 + 5800 + 30) at bench.step_cost's side-by-side step costs: the 30-step
# denoiser gives the same masks as 270 (BENCHMARKS.md, "The diffusion stage at 30 steps"), and the
# headline before 2026-12-08 ran at 0.20 / 0.70 / 0.10.
SHARES = {
    "unet": {"diffusion_steps": 1.0},
    "prior": {"ae_steps": 0.10, "prior_steps": 0.70, "diffusion_steps": 0.20},
    "prior-lidc": {"ae_steps": 0.225, "prior_steps": 0.76, "diffusion_steps": 0.015},
    "no-prior": {"ae_steps": 0.10, "diffusion_steps": 0.90},
}
STAGE_KEY = {
    "autoencoder": "ae_steps",
    "prior": "prior_steps",
    "diffusion": "diffusion_steps",
    "segmenter": "diffusion_steps",
}
PROBE_STEPS = 40
REPORT = ("dice_nonempty", "dice", "iou", "ged", "hm_iou", "ece", "ece_border", "brier", "brier_soft")


def seconds_per_step(
    dataset: str, overrides: list[str], probes: int = 2, steps: int = PROBE_STEPS, base: list[str] = BASE
) -> tuple[dict[str, float], float]:
    """Wall seconds per step of each stage's step key, and the run's fixed seconds: the faster of
    `probes` short probe runs (`steps` per stage).

    Per step: the median wall time per step of the intervals between logged steps, the first left
    out, checkpoint writes, batch drawing and augmentation included (images_per_s leaves the writes
    out, and the first benchmark gave the UNet 733 s of a 600 s budget). Fixed: what the run spends
    outside its steps (fitting the latent scale and the threshold, the final quick validation), the
    probe's total minus its steps. Two probes, the faster kept per key: one probe of 30 steps, slowed
    by something passing, once gave the latent model 507 s of a 600 s budget while the UNet got 597."""
    return fastest([probe(dataset, overrides, steps, base) for _ in range(probes)])


def fastest(runs: list[tuple[dict[str, float], float]]) -> tuple[dict[str, float], float]:
    """Of several probes' (seconds per step by key, fixed seconds), the smallest of each."""
    return {key: min(p[0][key] for p in runs) for key in runs[0][0]}, min(p[1] for p in runs)


def probe(dataset: str, overrides: list[str], steps: int, base: list[str]) -> tuple[dict[str, float], float]:
    """One probe run of `steps` per stage: seconds per step of each step key, and the fixed seconds."""
    budget = [f"train.{key}={steps}" for key in ("ae_steps", "prior_steps", "diffusion_steps")]
    config = load_config(
        [f"data={dataset}", *base, *overrides, *budget, f"train.runs_dir={RUNS}", "train.run_name=probe"]
    )
    shutil.rmtree(RUNS / "probe", ignore_errors=True)
    stamps: dict[tuple[str, int], float] = {}
    summary = train_run(
        config, Console(quiet=True), lambda stage, step: stamps.setdefault((stage, step), time.perf_counter())
    )
    # A stage may sum several step keys (the UNet's: ae_steps + diffusion_steps), so it ran its own count
    logged = {stage: sorted(s for st, s in stamps if st == stage) for stage, _ in stamps}
    per_step = {  # the median interval: one slow interval (a first allocation) must not set the budget
        STAGE_KEY[stage]: statistics.median(
            (stamps[stage, b] - stamps[stage, a]) / (b - a) for a, b in zip(done[1:], done[2:], strict=False)
        )
        for stage, done in logged.items()
    }
    stepping = sum(done[-1] * per_step[STAGE_KEY[stage]] for stage, done in logged.items())
    return per_step, max(0.0, summary["train_seconds"] - stepping)


def budget_steps(seconds: float, per_step: dict[str, float], shares: dict[str, float]) -> list[str]:
    # at least one step per stage with a share: --quick's 18 s would give LIDC's 30-step denoiser none
    steps = {key: max(1, int(share * seconds / per_step[key])) for key, share in shares.items()}
    zeros = {k: 0 for k in ("ae_steps", "prior_steps", "diffusion_steps") if k not in steps}
    return [f"train.{k}={v}" for k, v in {**zeros, **steps}.items()]


def train_variant(dataset: str, name: str, seconds: float, console: Console, suffix: str = "") -> tuple[Path, dict]:
    overrides = VARIANTS[name]
    model = load_config([f"data={dataset}", *overrides]).model
    kind = "unet" if model.kind == "unet" else "prior" if model.prior else "no-prior"
    shares = SHARES.get(f"{kind}-{dataset}", SHARES[kind])
    per_step, fixed = seconds_per_step(dataset, overrides)
    steps = budget_steps(seconds - fixed, per_step, shares)
    run_name = f"{dataset}-{name}{suffix}"
    shutil.rmtree(RUNS / run_name, ignore_errors=True)
    config = load_config(
        [f"data={dataset}", *BASE, *overrides, *steps, f"train.runs_dir={RUNS}", f"train.run_name={run_name}"]
    )
    summary = train_run(config, console)
    console.print(
        f"{run_name}: {' '.join(steps)} · fixed {fixed:.0f} s · "
        f"trained {summary['train_seconds']:.0f} s of {seconds:.0f}"
    )
    return Path(summary["run_dir"]), {
        "train_s": summary["train_seconds"],
        "steps": " ".join(s.split(".")[1] for s in steps),
    }


def evaluate(run_dir: Path, split: str, images: int, console: Console, sampling: list[str] | None = None) -> dict:
    options = {"split": split, "samples": "16", "steps": "20", "images": str(images)}
    row = evaluate_run(run_dir, options, sampling or [], console).row(0, named=True)
    return {k: row[k] for k in SUMMARY_METRICS} | {"images": int(row["images"])}


@torch.no_grad()
def unet_spread(run_dir: Path) -> float:
    """The spread for a trained UNet's map thresholded at 16 nested levels (models/unet.py): the one
    the latent model's prior stage would fit on the same validation images, so GED and ECE compare
    like with like; on the map the UNet samples (`probability_map`: averaged over views with model.tta)."""
    from platform.build import load_trained
    from platform.config import load_run_config

    config = load_run_config(run_dir / "config.yaml")
    model, _ = load_trained(run_dir, config)
    images, masks = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "val").fitting_sample()
    probs = torch.cat([model.probability_map(images[i : i + 64]) for i in range(0, len(images), 64)])
    return best_spread(probs, masks, 0.5)


def ms_per_mask(run_dir: Path, dataset: str, steps: int) -> float:
    """Wall ms per sampled mask: 16 masks of each of 8 validation images, `steps` DDIM steps."""
    from platform.build import load_trained
    from platform.config import load_run_config

    model, _ = load_trained(run_dir, load_run_config(run_dir / "config.yaml"))
    images = torch.from_numpy(PreparedSplit.open(Path("prepared") / dataset, "val").images[:8].copy())
    model.sample(images[:1], 2, steps)  # warm-up
    tic = time.perf_counter()
    model.sample(images, 16, steps, torch.Generator().manual_seed(0))
    return 1000 * (time.perf_counter() - tic) / (16 * len(images))


def patient_difference(run_a: Path, run_b: Path, split: str) -> dict:
    """b − a in Dice on slices with a non-empty consensus, bootstrap over patients, Wilcoxon."""
    a, b = (
        pl.read_parquet(r / f"eval-{split}" / "images.parquet").filter(pl.col("foreground") > 0) for r in (run_a, run_b)
    )
    row = paired_comparison(a, b, ("dice",), cluster="group").row(0, named=True)
    return {k: row[k] for k in ("difference", "ci_low", "ci_high", "wilcoxon_p", "pairs")}


def print_partial(rows: list[dict], suffix: str) -> None:
    """Each model's change against the default `ldm` of the same dataset and split, and a RESULT line."""
    table = pl.DataFrame(rows).select("dataset", "model", "split", "dice_nonempty", "dice", "ged", "ece")
    reference = table.filter(pl.col("model") == "ldm" + suffix).select(
        "dataset", "split", pl.col("dice_nonempty").alias("ldm_dice_nonempty")
    )
    if not reference.is_empty():
        delta = table.join(reference, on=["dataset", "split"]).with_columns(
            (pl.col("dice_nonempty") - pl.col("ldm_dice_nonempty")).alias("vs_ldm")
        )
        with pl.Config(tbl_rows=40, float_precision=4):
            print(delta.drop("ldm_dice_nonempty"))
    values = " ".join(
        f"{r['dataset']}_{r['split']}_{r['model'].replace('-', '_').replace('.', '')}"
        f"_dice_nonempty={r['dice_nonempty']:.4f}"
        for r in table.iter_rows(named=True)
    )
    print(f"RESULT {values}")


def table_name(suffix: str, datasets: str, variants: str | None, ablations: bool) -> str:
    """The parquet file of one invocation: a partial run (fewer datasets, named variants, the
    ablations) never overwrites the headline's quality{suffix}.parquet."""
    parts = [f"quality{suffix}"]
    if datasets != "lidc,ph2":
        parts.append(datasets.replace(",", "+"))
    if variants:
        parts.append(variants.replace(",", "+"))
    elif ablations:
        parts.append("ablations")
    return "-".join(parts) + ".parquet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall-clock budget per model")
    parser.add_argument("--quick", action="store_true", help="0.3 minutes and 16 images, to check the script")
    parser.add_argument("--ablations", action="store_true", help="also train each ablation of the default")
    parser.add_argument("--datasets", default="lidc,ph2", help="comma-separated: lidc, ph2")
    parser.add_argument("--variants", help=f"comma-separated, instead of the default set: {', '.join(VARIANTS)}")
    parser.add_argument(
        "--shares",
        help="autoencoder,prior,diffusion shares of a prior model's time (defaults: LIDC 0.2,0.7,0.1, PH2 0.1,0.7,0.2)",
    )
    parser.add_argument("--splits", default="val,test", help="of the headline models (ablations: val only)")
    parser.add_argument("--seed", type=int, default=0, help="train.seed of every model (runs named ...-seedN)")
    parser.add_argument("--speed", type=Path, help="only time sampling of this trained LIDC run (ms per mask)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.speed:
        speed = {steps: ms_per_mask(args.speed, "lidc", steps) for steps in (10, 20)}
        print(f"RESULT ldm_ms_per_mask={speed[20]:.1f} ldm_ms_per_mask_10={speed[10]:.1f}")
        return
    seconds, images = (18.0, 16) if args.quick else (60 * args.minutes, 10**6)
    if args.shares:
        values = [float(v) for v in args.shares.split(",")]
        shares = dict(zip(("ae_steps", "prior_steps", "diffusion_steps"), values, strict=True))
        SHARES.update({kind: shares for kind in SHARES if kind.startswith("prior")})
    suffix = f"-s{args.shares.replace(',', '-')}" if args.shares else ""
    if args.seed:  # another seed of the same models: one run's dice_nonempty varies by 0.03-0.05
        BASE.append(f"train.seed={args.seed}")
        suffix += f"-seed{args.seed}"
    console = Console()
    rows, runs = [], {}
    # unet-w50 (the paper's weight on the baseline) was measured once; `--ablations` is about the default.
    default = ABLATIONS if args.ablations else ["unet", "ldm"]
    names = args.variants.split(",") if args.variants else default
    for dataset in args.datasets.split(","):
        for name in names if dataset == "lidc" or args.variants else ["unet", "ldm"]:
            run_dir, trained = train_variant(dataset, name, seconds, console, suffix)
            runs[dataset, name] = run_dir
            samplings = {name: None}
            if name == "unet":
                samplings["unet-spread"] = [f"model.threshold_spread={unet_spread(run_dir)}"]
            for split in args.splits.split(",") if name in ("unet", "ldm") else ("val",):
                for model, sampling in samplings.items():
                    metrics = evaluate(run_dir, split, images, console, sampling)
                    rows.append({"dataset": dataset, "model": model + suffix, "split": split, **trained, **metrics})
    table = pl.DataFrame(rows).select("dataset", "model", "split", "train_s", "steps", "images", *REPORT)
    with pl.Config(tbl_rows=40, tbl_cols=20, float_precision=4, tbl_width_chars=250):
        print(table)
    pl.DataFrame(rows).write_parquet(RUNS / table_name(suffix, args.datasets, args.variants, args.ablations))
    if not {("lidc", "unet"), ("lidc", "ldm"), ("ph2", "unet"), ("ph2", "ldm")} <= set(runs):
        print_partial(rows, suffix)  # a partial run (--datasets/--variants/--ablations)
        return
    speed = {steps: ms_per_mask(runs["lidc", "ldm"], "lidc", steps) for steps in (10, 20)}
    difference = patient_difference(runs["lidc", "unet"], runs["lidc", "ldm"], "test")
    print(f"ldm ms per mask: {speed[10]:.1f} (10 DDIM steps), {speed[20]:.1f} (20 steps)")
    print(
        f"LIDC test, ldm − unet, Dice on non-empty slices: {difference['difference']:+.4f} "
        f"[{difference['ci_low']:+.4f}, {difference['ci_high']:+.4f}] (patients resampled), "
        f"Wilcoxon p = {difference['wilcoxon_p']:.3g}, {difference['pairs']} slices"
    )
    get = {(r["dataset"], r["model"].removesuffix(suffix), r["split"]): r for r in rows}
    lidc_u, lidc_l = get["lidc", "unet", "test"], get["lidc", "ldm", "test"]
    lidc_us = get["lidc", "unet-spread", "test"]
    print(
        "RESULT "
        f"lidc_unet_dice_nonempty={lidc_u['dice_nonempty']:.4f} lidc_ldm_dice_nonempty={lidc_l['dice_nonempty']:.4f} "
        f"lidc_unet_dice={lidc_u['dice']:.4f} lidc_ldm_dice={lidc_l['dice']:.4f} "
        f"lidc_ldm_ged={lidc_l['ged']:.4f} lidc_unet_ged={lidc_u['ged']:.4f} "
        f"lidc_ldm_ece={lidc_l['ece']:.5f} lidc_unet_ece={lidc_u['ece']:.5f} "
        f"lidc_unet_spread_ged={lidc_us['ged']:.4f} lidc_unet_spread_ece={lidc_us['ece']:.5f} "
        f"ph2_ldm_dice={get['ph2', 'ldm', 'test']['dice']:.4f} ph2_unet_dice={get['ph2', 'unet', 'test']['dice']:.4f} "
        f"ldm_ms_per_mask={speed[20]:.1f} ldm_ms_per_mask_10={speed[10]:.1f} "
        f"diff_dice_nonempty={difference['difference']:.4f}"
    )


if __name__ == "__main__":
    main()
