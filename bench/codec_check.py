"""The mask autoencoder alone: how much of the validation consensus survives its latent.

Trains only the autoencoder stage (`train.stage=autoencoder`, 2 threads, batch 16) with the given
Hydra overrides on top of `data=lidc model=medseglatdiff`, then encodes and decodes the consensus
(majority vote) of every validation slice: Dice on the non-empty ones, also split at their median
lesion area (`platform.evaluation.reconstruction`). This is the ceiling of the latent model's
`dice_nonempty`; about 140 s for LIDC's 1440 steps here, so step budgets and crops are cheap to compare.
A few validation consensus masks are a pixel or two (annotators overlapping at one spot) and move
that ceiling by 0.008 each, so it also reports each annotator's own masks of at least 5 px through
the codec: Dice and the share of their area kept, under 50 px (small nodules) and above.
Nothing else may run meanwhile (the seconds are part of the answer). Usage:

  python -m bench.codec_check train.ae_steps=720 [model.ae_crop=32] [train.seed=1]
  python -m bench.codec_check train.seed=2 model.ae_sample_posterior=false"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from platform.config import load_config
from platform.data.loader import PreparedSplit
from platform.evaluation.reconstruction import reconstruction_by_size, round_trip
from platform.metrics import dice, majority_vote
from platform.training import fit

import torch

RUNS = Path("runs/bench-codec")


def ceiling(codec: torch.nn.Module, split: PreparedSplit) -> float:
    consensus = majority_vote(torch.from_numpy(split.masks.copy()).float()).float()
    consensus = consensus[consensus.flatten(1).sum(1) > 0]  # the non-empty slices: only they count
    return float(dice(round_trip(codec, consensus)[:, 0], consensus[:, 0]).mean())


def annotator_roundtrip(codec: torch.nn.Module, split: PreparedSplit, small: int = 50) -> dict[str, float]:
    """Dice of every annotator mask of at least 5 px against itself through the codec (posterior
    mean, threshold 0.5), below and at or above `small` px, and the share of the small ones' area kept."""
    masks = torch.from_numpy(split.masks.copy()).float().flatten(0, 1)[:, None]  # (N·A)×1×H×W
    masks = masks[masks.flatten(1).sum(1) >= 5]
    kept = round_trip(codec, masks, 64)
    scores, below = dice(kept[:, 0], masks[:, 0]), masks.flatten(1).sum(1) < small
    return {
        "annotator_dice_small": float(scores[below].mean()),
        "annotator_dice_large": float(scores[~below].mean()),
        "small_area_kept": float(kept[below].sum() / masks[below].sum()),
    }


def main(overrides: list[str]) -> None:
    torch.set_num_threads(2)
    name = "-".join(o.split(".")[-1].replace("=", "") for o in overrides) or "default"  # a Hydra-safe run name
    base = ["data=lidc", "model=medseglatdiff", "train.batch_size=16", "train.threads=2", "train.stage=autoencoder"]
    config = load_config([*base, *overrides, f"train.runs_dir={RUNS}", f"train.run_name={name}"])
    shutil.rmtree(RUNS / name, ignore_errors=True)
    prepared = Path(config.train.prepared_dir) / config.data.name
    tic = time.perf_counter()
    model = fit(config, PreparedSplit.open(prepared, "train"), RUNS / name)
    seconds = time.perf_counter() - tic
    val = PreparedSplit.open(prepared, "val")
    by_size = reconstruction_by_size(model.codec, val, limit=len(val))
    nonempty = ceiling(model.codec.eval(), val)
    annotators = annotator_roundtrip(model.codec, val)
    print(f"{name}: {config.train.ae_steps} steps in {seconds:.0f} s; validation consensus through the autoencoder:")
    small, large = by_size["ae_dice_small"], by_size["ae_dice_large"]
    print(f"  dice_nonempty {nonempty:.3f} · small lesions {small:.3f} · large {large:.3f}")
    print(
        f"  annotator masks ≥ 5 px: Dice under 50 px {annotators['annotator_dice_small']:.3f} "
        f"(area kept {annotators['small_area_kept']:.3f}) · above {annotators['annotator_dice_large']:.3f}"
    )
    print(
        f"RESULT ae_steps={config.train.ae_steps} train_s={seconds:.0f} codec_dice_nonempty={nonempty:.4f} "
        f"ae_dice_small={small:.4f} ae_dice_large={large:.4f} "
        + " ".join(f"{k}={v:.4f}" for k, v in annotators.items())
    )


if __name__ == "__main__":
    main(sys.argv[1:])
