"""Where a trained MedSegLatDiff's detection comes from: its prior, the threshold, the autoencoder.

Prints `dice_nonempty` (Dice vs the majority vote on slices whose majority is not empty) and
overall Dice on one split for: the prior's probability map thresholded at each of `--thresholds`,
the prior's mask at the run's start threshold (model.prior_threshold, or the one fitted on training
images) passed through the mask autoencoder (the start of sampling), and the autoencoder's
reconstruction of the consensus itself (the codec's ceiling). `--tta`: the prior's map averaged
over the 8 flips and 90° rotations, as sampling with `model.tta` makes it (the default one-view map
is what earlier sections of BENCHMARKS.md scored). `--unet RUN`: the same thresholds on a UNet
run's map (with `--tta`, averaged likewise), the baseline of the same seed. Compare with the sampled
masks' figures from `platform.evaluate`. Usage:

  python -m bench.prior_check runs/bench-quality/lidc-ldm [--split val]
  python -m bench.prior_check runs/lidc-medseglatdiff-f4c4-concat-seed0 --tta --thresholds 0.5,0.45 \
      --unet runs/lidc-unet-seed0"""

from __future__ import annotations

import argparse
from pathlib import Path
from platform.build import load_trained
from platform.config import load_run_config
from platform.data.loader import PreparedSplit
from platform.evaluation.reconstruction import round_trip
from platform.metrics import dice, majority_vote

import torch


def thresholds(text: str) -> list[float]:
    values = [float(part) for part in text.split(",")]
    if not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must lie in (0, 1), got {text}")
    return values


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--tta", action="store_true", help="average the maps over the 8 dihedral views")
    parser.add_argument("--thresholds", type=thresholds, default=[0.5, 0.4, 0.3])
    parser.add_argument("--unet", type=Path, help="a UNet run whose map is scored at the same thresholds")
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_run_config(args.run / "config.yaml")
    model, _ = load_trained(args.run, config)
    split = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, args.split)
    images = torch.from_numpy(split.images.copy())
    consensus = majority_vote(torch.from_numpy(split.masks.copy()).float())[:, 0].float()
    nonempty = consensus.flatten(1).sum(1) > 0

    def probabilities(network: torch.nn.Module) -> torch.Tensor:  # N×H×W; load_trained gave eval mode
        maps = [network.probability_map(images[i : i + 32], args.tta) for i in range(0, len(images), 32)]
        return torch.cat(maps)[:, 0]

    def through_codec(masks: torch.Tensor) -> torch.Tensor:  # N×H×W
        return round_trip(model.codec, masks[:, None])[:, 0]

    probs = probabilities(model.prior)
    start = model.start_threshold
    rows = [(f"prior_ge_{t}", f"prior >= {t}", (probs >= t).float()) for t in args.thresholds]
    rows.append(("start_mask", f"autoencoder(prior >= {start:.2f})", through_codec((probs >= start).float())))
    rows.append(("codec_ceiling", "autoencoder(consensus)", through_codec(consensus)))
    if args.unet is not None:
        unet, _ = load_trained(args.unet, load_run_config(args.unet / "config.yaml"))
        unet_probs = probabilities(unet)
        rows += [(f"unet_ge_{t}", f"UNet >= {t}", (unet_probs >= t).float()) for t in args.thresholds]
    results = []
    for key, label, mask in rows:
        per_image = dice(mask, consensus)
        dne, overall = float(per_image[nonempty].mean()), float(per_image.mean())
        print(f"{label:32s} dice_nonempty {dne:.3f}  Dice {overall:.3f}")
        results.append(f"{key}={dne:.4f} {key}_dice={overall:.4f}")
    print("RESULT " + " ".join(results))


if __name__ == "__main__":
    main()
