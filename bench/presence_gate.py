"""Would a slice-level presence decision buy overall Dice cheaply, and for which model?

On LIDC a consensus-empty slice almost always has one rater of four marking a lesion, and every
model marks many of them (`presence.parquet`). Raising the pixel threshold trades detection
(`dice_nonempty`) for overall Dice about one for one. A gate acts on whole slices instead: a mask
is kept only where the confidence map reaches τ > 0.5 somewhere (`presence_gate`), so extents stay
those of the 0.5 mask. Per run and τ (k/16: the latent model's shares of 16 samples) this prints
the slices emptied, how many of them had a non-empty consensus, and the two Dice figures; then,
per side, the mean change and the AUC of the confidence maximum separating the marked slices
whose consensus is non-empty from the rest. A run's `eval-<split>/images.parquet` is read when it
has `confidence_max`; otherwise the run is sampled as `platform.evaluate` samples it (16 masks,
20 DDIM steps, seed 0), the same masks. Usage:

  python -m bench.presence_gate 'runs/lidc-unet-seed*' 'runs/lidc-medseglatdiff-f4c4-concat-seed*' [--split val]"""

from __future__ import annotations

import argparse
from pathlib import Path
from platform.config import load_run_config
from platform.evaluation.ensembles import EvaluationSettings
from platform.evaluation.presence import presence_gate
from platform.evaluation.run_pairs import evaluated_images, evaluation_folder, expand_runs
from platform.evaluation.runs import evaluate_checkpoint

import numpy as np
import polars as pl
import torch

GATES = tuple(k / 16 for k in range(9, 14))  # above 0.5, where the mask itself decides
COST = 0.005  # the detection a gate may cost: half the margin


def scores(images: pl.DataFrame) -> tuple[float, float]:
    """(dice_nonempty, overall Dice)."""
    nonempty = images.filter(pl.col("foreground") > 0)
    return float(nonempty["dice"].mean()), float(images["dice"].mean())  # type: ignore[arg-type]


def presence_auc(images: pl.DataFrame) -> float:
    """Among the marked slices, the chance that one with a non-empty consensus has the higher
    confidence maximum than one without (ties count half)."""
    marked = images.filter(pl.col("predicted_foreground") > 0)
    consensus = marked["foreground"].to_numpy() > 0
    top = marked["confidence_max"].to_numpy()
    pos, neg = top[consensus][:, None], top[~consensus][None, :]
    if not pos.size or not neg.size:
        return float("nan")
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


def evaluated(run: Path, split: str) -> pl.DataFrame:
    """The run's per-image rows: its evaluation's, or sampled now when that predates `confidence_max`."""
    if (evaluation_folder(run, split) / "images.parquet").is_file():
        images = evaluated_images(run, split)
        if "confidence_max" in images.columns:
            return images
    config = load_run_config(run / "config.yaml")
    torch.set_num_threads(config.train.threads)
    settings = EvaluationSettings(samples=16, steps=20, uncertainty_threshold=0.5)
    return evaluate_checkpoint(config, run, split, settings)[0].images


def side(runs: list[Path], split: str) -> tuple[np.ndarray, list[float]]:
    """Per run and gate: Δdice_nonempty and ΔDice against the plain 0.5 mask; per run the AUC."""
    changes, aucs = [], []
    for run in runs:
        images = evaluated(run, split)
        base = scores(images)
        rows = []
        print(f"{run}  dice_nonempty {base[0]:.3f}  Dice {base[1]:.3f}")
        for gate in GATES:
            gated = presence_gate(images, gate)
            value = scores(gated)
            emptied = gated.filter(pl.col("gated"))
            with_consensus = int((emptied["foreground"] > 0).sum())
            print(
                f"  τ {gate:.4f}: {emptied.height:3d} slices emptied ({with_consensus:2d} with a consensus)"
                f"  dice_nonempty {value[0]:.3f}  Dice {value[1]:.3f}"
            )
            rows.append((value[0] - base[0], value[1] - base[1]))
        changes.append(rows)
        aucs.append(presence_auc(images))
        print(f"  presence AUC {aucs[-1]:.3f}")
    return np.array(changes), aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="a run folder or a quoted glob of them (the baseline)")
    parser.add_argument("b", help="the same for the other model")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    result = {}
    sides = {"a": side(expand_runs(args.a), args.split), "b": side(expand_runs(args.b), args.split)}
    for name, (changes, aucs) in sides.items():
        mean = changes.mean(0)  # gates × (Δdne, ΔDice)
        print(f"{name} ({len(aucs)} runs), mean change by gate:")
        for gate, (dne, overall) in zip(GATES, mean, strict=True):
            print(f"  τ {gate:.4f}: dice_nonempty {dne:+.4f}  Dice {overall:+.4f}")
        # no gate (0.5, no change) competes too, so a side whose every gate costs too much keeps it
        options = [(0.5, 0.0, 0.0)] + [(g, dne, d) for g, (dne, d) in zip(GATES, mean, strict=True) if dne >= -COST]
        gate, cost, gain = max(options, key=lambda option: option[2])
        result |= {f"{name}_gate": gate, f"{name}_dice_gain": gain, f"{name}_dne_cost": cost}
        result[f"{name}_auc"] = float(np.nanmean(aucs))
    print(f"(the best gate per side whose mean dice_nonempty cost is at most {COST})")
    print("RESULT " + " ".join(f"{k}={v:.4f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
