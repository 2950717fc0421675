"""Where a trained MedSegLatDiff's detection comes from: its prior, the threshold, the autoencoder.

Prints `dice_nonempty` (Dice vs the majority vote on slices whose majority is not empty) on one
split for: the prior's probability map thresholded at 0.5 / 0.4 / 0.3, the prior's mask at the
run's start threshold (model.prior_threshold, or the one fitted on training images) passed
through the mask autoencoder (the start of sampling), and the autoencoder's reconstruction of
the consensus itself (the codec's ceiling). Compare with the sampled masks' `dice_nonempty` from
`platform.evaluate`. Usage:

  python -m bench.prior_check runs/bench-quality/lidc-ldm [--split val]"""

from __future__ import annotations

import argparse
from pathlib import Path
from platform.build import load_trained
from platform.config import load_run_config
from platform.data.loader import PreparedSplit
from platform.evaluation.reconstruction import round_trip
from platform.metrics import dice, majority_vote

import torch


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_run_config(args.run / "config.yaml")
    model, _ = load_trained(args.run, config)
    split = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, args.split)
    images = torch.from_numpy(split.images.copy())
    consensus = majority_vote(torch.from_numpy(split.masks.copy()).float())[:, 0].float()
    nonempty = consensus.flatten(1).sum(1) > 0

    def batched(fn, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([fn(x[i : i + 32]) for i in range(0, len(x), 32)])

    def through_codec(masks: torch.Tensor) -> torch.Tensor:  # N×H×W
        return round_trip(model.codec, masks[:, None])[:, 0]

    probs = batched(lambda x: torch.sigmoid(model.prior(x)), images)[:, 0]
    rows = {f"prior >= {t}": (probs >= t).float() for t in (0.5, 0.4, 0.3)}
    rows[f"autoencoder(prior >= {model.start_threshold:.2f})"] = through_codec((probs >= model.start_threshold).float())
    rows["autoencoder(consensus)"] = through_codec(consensus)
    scores = {name: float(dice(mask, consensus)[nonempty].mean()) for name, mask in rows.items()}
    for name, value in scores.items():
        print(f"{name:32s} dice_nonempty {value:.3f}")
    keys = ["prior_ge_0.5", "prior_ge_0.4", "prior_ge_0.3", "start_mask", "codec_ceiling"]
    print("RESULT " + " ".join(f"{k}={v:.4f}" for k, v in zip(keys, scores.values(), strict=True)))


if __name__ == "__main__":
    main()
