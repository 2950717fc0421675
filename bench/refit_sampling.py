"""What the current fitting rules choose for a trained run, without retraining: the prior's start
threshold and spread (MedSegLatDiff, the prior stage's own `_fit_prior_threshold`) or the UNet's
threshold spread (`best_spread` at 0.5, as `bench.quality` fits it), on the validation split's
fitting sample. For runs trained before a rule changed; pass the printed values to
`platform.evaluate` as sampling overrides. Usage:

  python -m bench.refit_sampling runs/bench-quality/lidc-ldm runs/bench-quality/lidc-unet"""

from __future__ import annotations

import argparse
from pathlib import Path
from platform.build import load_trained
from platform.config import load_run_config
from platform.data.loader import PreparedSplit

import torch

from models.thresholds import best_spread


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = []
    for run in args.runs:
        config = load_run_config(run / "config.yaml")
        model, _ = load_trained(run, config)
        images, masks = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "val").fitting_sample()
        if getattr(model, "prior", None) is not None:
            fitted = model._fit_prior_threshold(images, masks)
            values = {"threshold": fitted["fitted_prior_threshold"], "spread": fitted["fitted_prior_threshold_spread"]}
            overrides = f"model.prior_threshold={values['threshold']} model.prior_threshold_spread={values['spread']}"
        else:
            probs = torch.cat([torch.sigmoid(model(images[i : i + 64])) for i in range(0, len(images), 64)])
            values = {"spread": best_spread(probs, masks, 0.5)}
            overrides = f"model.threshold_spread={values['spread']}"
        print(f"{run}: {overrides}")
        results += [f"{run.name.replace('-', '_')}_{key}={value}" for key, value in values.items()]
    print("RESULT " + " ".join(results))


if __name__ == "__main__":
    main()
