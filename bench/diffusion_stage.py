"""Retrain only the diffusion stage of a trained MedSegLatDiff under overrides, and score it.

The run's mask autoencoder and prior (and their fitted latent scale and start threshold) are kept;
the denoiser and its image encoder start again from their seeded initial weights and train for the
run's `diffusion_steps` with the overrides applied. A diffusion-stage option is then compared with
its base on the same frozen stages, in about 2 minutes of training instead of a whole budget: run
once without overrides (it reproduces the run's own diffusion stage, a check of the setup) and once
per option. `--autoencoder` retrains the mask autoencoder too (its `ae_steps`, then a new latent
scale), for an option of the codec; `--prior` retrains the prior too (its `prior_steps`, then its
fitted start threshold and spread), for an option of the prior. Writes runs/diffusion-stage/<name>/
and prints the evaluation of one split (16 samples, 20 DDIM steps, every image) and a last line
`RESULT ...`. Usage:

  python -m bench.diffusion_stage runs/bench-quality/lidc-ldm NAME [--autoencoder] [override ...]
  python -m bench.diffusion_stage runs/bench-quality/lidc-ldm x0-p0.5 model.prediction=sample \
      model.prior_start_share=0.5"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from platform.build import build_model
from platform.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from platform.cli import run_command
from platform.config import load_run_config
from platform.train import run as train_run

from rich.console import Console

from bench.quality import evaluate
from models.losses import SegmentationLoss
from models.stages import StageLosses

RUNS = Path("runs/diffusion-stage")
SHOWN = ("dice_nonempty", "dice", "iou", "ged", "hm_iou", "ece", "brier")


def main() -> int:
    return run_command(retrain)


def retrain(console: Console) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a trained MedSegLatDiff run folder with a prior")
    parser.add_argument("name", help="the new run's folder name under runs/diffusion-stage/")
    parser.add_argument("overrides", nargs="*", help="model.<key>=... or train.<key>=... for the diffusion stage")
    parser.add_argument("--split", default="val")
    parser.add_argument("--autoencoder", action="store_true", help="retrain the mask autoencoder too")
    parser.add_argument("--prior", action="store_true", help="retrain the prior too")
    args = parser.parse_intermixed_args()  # overrides may follow --autoencoder
    out = RUNS / args.name
    config = load_run_config(
        args.run / "config.yaml", [*args.overrides, f"train.runs_dir={RUNS}", f"train.run_name={args.name}"]
    )
    payload = load_checkpoint(args.run / CHECKPOINT)
    if "diffusion" not in payload["state"]["stages_done"]:
        parser.error(f"{args.run}: not a MedSegLatDiff run with a finished diffusion stage")
    retrained = ("autoencoder",) * args.autoencoder + ("prior",) * args.prior + ("diffusion",)
    model = build_model(config, payload["state"]["latent_scale"])
    stages = model.stages(StageLosses(SegmentationLoss(1.0)))  # only their names and `owns` are read
    owned = tuple(prefix for stage in stages if stage.name in retrained for prefix in stage.owns)
    weights = model.state_dict()
    weights.update({k: v for k, v in payload["model"].items() if not k.startswith(owned)})
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        parser.error(f"{args.run}: the overrides change more than the retrained stages ({str(exc)[:160]})")
    state = dict(payload["state"], stage="", step=0)
    state["stages_done"] = [s for s in state["stages_done"] if s not in retrained]
    state["metrics"] = [m for m in state["metrics"] if m["stage"] not in retrained]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    save_checkpoint(out / CHECKPOINT, {"model": model.state_dict(), "state": state})
    tic = time.perf_counter()
    train_run(config, console)
    train_s = time.perf_counter() - tic
    row = evaluate(out, args.split, 10**6, console)  # bench.quality's settings: 16 samples, 20 DDIM steps
    values = {"train_s": train_s, **{k: row[k] for k in SHOWN}}
    print(f"RESULT name={args.name} " + " ".join(f"{k}={v:.4f}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
