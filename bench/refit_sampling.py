"""What the current fitting rules choose for a trained run, without retraining: the prior's start
threshold and spread (MedSegLatDiff, the prior stage's own `_fit_prior_threshold`) or the UNet's
threshold spread (`bench.quality.unet_spread`), on the validation split's
fitting sample; the prior's on its plain map and on its map averaged over flips and rotations
(`model.tta`). For runs trained before a rule changed; pass the printed values to
`platform.evaluate` as sampling overrides. Usage:

  python -m bench.refit_sampling runs/bench-quality/lidc-ldm runs/bench-quality/lidc-unet"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from platform.build import load_trained
from platform.config import load_run_config
from platform.data.loader import PreparedSplit
from platform.errors import ConfigError
from typing import NoReturn

import torch

from bench.quality import unet_spread


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = []
    for run in args.runs:
        try:
            config = load_run_config(run / "config.yaml")
        except ConfigError as error:
            _usage(str(error))
        if config.model.prior:
            model, _ = load_trained(run, config)
            split = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "val")
            fitted = model._fit_prior_threshold(*split.fitting_sample())
            names = {key: key.removeprefix("fitted_prior_").replace("threshold_spread", "spread") for key in fitted}
            values = {names[key]: value for key, value in fitted.items()}
            overrides = (
                f"model.tta=false model.prior_threshold={values['threshold']} model.prior_threshold_spread="
                f"{values['spread']}; model.tta=true model.prior_threshold={values['threshold_tta']} "
                f"model.prior_threshold_spread={values['spread_tta']}"
            )
        elif config.model.kind == "unet":
            values = {"spread": unet_spread(run)}
            overrides = f"model.threshold_spread={values['spread']}"
        else:
            _usage(f"{run}: a {config.model.kind} run without a prior has no start masks to fit")
        print(f"{run}: {overrides}")
        results += [f"{run.name.replace('-', '_')}_{key}={value}" for key, value in values.items()]
    print("RESULT " + " ".join(results))


def _usage(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    main()
