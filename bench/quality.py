"""Quality at a fixed CPU budget: MedSegLatDiff (concat, cfg) vs the UNet baseline on real data.

LIDC-IDRI crops at 128 px (patient-level validation split, 4 annotators) and PH2 at 128 px.
Budget per model (2 threads): autoencoder 300 + diffusion 600 steps of batch 16 for the latent
models; 900 steps of batch 16 for the UNet (the same number of optimizer steps). Evaluation:
16 samples, 20 DDIM steps, the first 128 validation images.
Usage (from the repository root, after `dvc repro`): python -m bench.quality [--quick]"""

from __future__ import annotations

import argparse
from pathlib import Path
from platform.config import load_config
from platform.evaluate import evaluate_run
from platform.train import run as train_run

import polars as pl
from rich.console import Console

MODELS = {
    "unet": ["model=unet"],
    "concat": ["model=medseglatdiff", "model.conditioning=concat"],
    "cfg": ["model=medseglatdiff", "model.conditioning=cfg", "model.guidance_scale=1.5"],
}


def measure(dataset: str, name: str, budget: list[str], eval_images: int, console: Console) -> dict:
    overrides = [
        f"data={dataset}",
        *MODELS[name],
        *budget,
        "train.runs_dir=runs/bench-quality",
        f"train.run_name={dataset}-{name}",
    ]
    summary = train_run(load_config(overrides), console)
    evaluation = evaluate_run(
        Path(summary["run_dir"]),
        {"split": "val", "samples": "16", "steps": "20", "images": str(eval_images)},
        [],
        console,
    )
    row = evaluation.row(0, named=True)
    return {
        "dataset": dataset,
        "model": name,
        "train_s": summary["train_seconds"],
        **{
            k: row[k]
            for k in (
                "images",
                "dice",
                "iou",
                "dice_annotators",
                "iou_annotators",
                "ged",
                "hm_iou",
                "ece",
                "ece_border",
                "brier",
            )
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10× smaller budget, to check the script")
    args = parser.parse_args()
    budget = ["train.ae_steps=300", "train.diffusion_steps=600", "train.batch_size=16"]
    eval_images = 128
    if args.quick:
        budget, eval_images = ["train.ae_steps=30", "train.diffusion_steps=60", "train.batch_size=16"], 16
    console = Console()
    rows = [measure("lidc", name, budget, eval_images, console) for name in ("unet", "concat", "cfg")]
    rows += [measure("ph2", name, budget, eval_images, console) for name in ("unet", "concat")]
    table = pl.DataFrame(rows)
    with pl.Config(tbl_rows=20, tbl_cols=20, float_precision=3, tbl_width_chars=200):
        print(table)
    get = {(r["dataset"], r["model"]): r for r in rows}
    print(
        "RESULT "
        + " ".join(
            [
                f"lidc_unet_dice={get['lidc', 'unet']['dice']:.4f}",
                f"lidc_concat_dice={get['lidc', 'concat']['dice']:.4f}",
                f"lidc_cfg_dice={get['lidc', 'cfg']['dice']:.4f}",
                f"lidc_unet_ged={get['lidc', 'unet']['ged']:.4f}",
                f"lidc_concat_ged={get['lidc', 'concat']['ged']:.4f}",
                f"lidc_cfg_ged={get['lidc', 'cfg']['ged']:.4f}",
                f"lidc_concat_ece={get['lidc', 'concat']['ece']:.5f}",
                f"lidc_cfg_ece={get['lidc', 'cfg']['ece']:.5f}",
                f"ph2_unet_dice={get['ph2', 'unet']['dice']:.4f}",
                f"ph2_concat_dice={get['ph2', 'concat']['dice']:.4f}",
            ]
        )
    )


if __name__ == "__main__":
    main()
