"""Train one model: `python -m platform.train data=<dataset> model=<medseglatdiff|unet|pixel_diffusion> ...`

Any Hydra override of platform/conf/ works (e.g. `model.conditioning=cfg model.guidance_scale=3
train.diffusion_steps=2000`). The run folder `runs/<name>/` gets config.yaml, metrics.parquet
(one row per logged step), checkpoint.pt (atomic; resumed when the same run is started again) and
summary.json with a quick validation score, and data_stats.json (the training data's channel
statistics, used to normalise external folders). `train.stage=autoencoder|diffusion` runs one stage."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from platform.atomic import write_text
from platform.cli import run_command
from platform.config import config_to_yaml, load_config
from platform.config_types import Config
from platform.data.loader import PreparedSplit
from platform.evaluation.ensembles import EvaluationSettings, evaluate_ensembles
from platform.results import write_table
from platform.training import choose_device, fit

import polars as pl
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from models.medseglatdiff import MedSegLatDiff


def default_run_name(config: Config) -> str:
    m = config.model
    parts = [config.data.name, m.kind]
    if m.kind == "medseglatdiff":
        parts += [f"f{m.latent_factor}c{m.latent_channels}"]
    if m.kind != "unet":
        parts += [m.mode]
    return "-".join(parts + [f"seed{config.train.seed}"])


def quick_validation(model: torch.nn.Module, val: PreparedSplit, config: Config) -> dict[str, float]:
    """Dice/IoU of the ensemble-mean mask against the majority vote on the first `eval_images`."""
    t = config.train
    settings = EvaluationSettings(
        samples=t.eval_samples, steps=t.ddim_steps, batch_size=16, seed=t.seed, max_images=t.eval_images, panels=0
    )
    result = evaluate_ensembles(model, val, [str(i) for i in range(len(val))], settings)
    return {
        "val_dice": result.summary["dice"],
        "val_iou": result.summary["iou"],
        "val_images": result.summary["images"],
    }


def run(config: Config, console: Console, on_logged: Callable[[str, int], None] | None = None) -> dict:
    """Train, write metrics.parquet and summary.json, print the summary; returns the summary.

    `on_logged(stage, step)` runs after each logged step's checkpoint is written (bench.quality
    times steps with it)."""
    t = config.train
    torch.set_num_threads(t.threads)
    dataset_dir = Path(t.prepared_dir) / config.data.name
    train, val = PreparedSplit.open(dataset_dir, "train"), PreparedSplit.open(dataset_dir, "val")
    train.check_matches(config.data.image_size, config.data.channels, dataset_dir)
    run_dir = Path(t.runs_dir) / (t.run_name or default_run_name(config))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_to_yaml(config))
    stats = dataset_dir / "stats.json"
    if stats.is_file():  # the normalisation an external folder gets at evaluation (platform/evaluation/external.py)
        (run_dir / "data_stats.json").write_text(stats.read_text())
    console.print(
        f"run folder [bold]{run_dir}[/] · device {choose_device(t.device)} · {t.threads} threads · "
        f"train {len(train)} / val {len(val)} images"
    )
    tic = time.perf_counter()
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[ips]:.1f} img/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def on_step(stage: str, step: int, total: int, loss: float, ips: float, checked: dict[str, float]) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, loss=float("nan"), ips=0.0)
            bar.update(tasks[stage], completed=step, loss=loss, ips=ips)
            if on_logged is not None:
                on_logged(stage, step)

        model = fit(config, train, run_dir, on_step, held_out=val)  # the prior's threshold is chosen on val
    from platform.checkpoint import load_checkpoint  # metrics live in the checkpoint's state

    state = load_checkpoint(run_dir / "checkpoint.pt")["state"]
    if state["metrics"]:
        write_table(pl.DataFrame(state["metrics"]), run_dir / "metrics.parquet")
    summary = {
        "run_dir": str(run_dir),
        "train_seconds": time.perf_counter() - tic,
        "wce_weight": state["wce_weight"],
        "latent_scale": state["latent_scale"],
        **state["fitted"].get("prior", {}),  # fitted_prior_threshold, with a prior
        **_sampling_start(model),
        **quick_validation(model, val, config),
    }
    write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary


def _sampling_start(model: torch.nn.Module) -> dict[str, float]:
    """The start threshold and spread the latent model samples with (configured or fitted); {} without a prior."""
    if not isinstance(model, MedSegLatDiff) or model.prior is None:
        return {}
    return {"start_threshold": model.start_threshold, "start_spread": model.start_spread}


def _start_masks(config: Config, summary: dict) -> str:
    """' · start threshold t · start spread s', each marked (fitted) unless configured; '' without a prior."""
    if "start_threshold" not in summary:
        return ""
    m = config.model
    return "".join(
        f" · {label} {summary[key]:.2f}" + (" (fitted)" if configured is None else "")
        for label, key, configured in (
            ("start threshold", "start_threshold", m.prior_threshold),
            ("start spread", "start_spread", m.prior_threshold_spread),
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ph2 model=unet train.ae_steps=100")
    args = parser.parse_args(argv)

    def body(console: Console) -> int:
        config = load_config(args.overrides)
        summary = run(config, console)
        console.print(
            f"val Dice {summary['val_dice']:.3f} · IoU {summary['val_iou']:.3f} ({summary['val_images']} images)"
            + _start_masks(config, summary)
            + f" · {summary['train_seconds']:.0f} s · {summary['run_dir']}"
        )
        return 0

    return run_command(body, Console())


if __name__ == "__main__":
    sys.exit(main())
