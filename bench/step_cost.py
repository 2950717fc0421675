"""Is the default LIDC budget an equal wall clock? Each model's step costs, side by side in one process.

The latent model's prior steps are sized so that its three stages take the UNet's wall clock, but
the two runs are timed in different hours, and on 2 shared cores one hour runs 10-20 % slower than
another. Here short probe runs of both models alternate (`--rounds` each, the faster kept per
stage), each stage timed over `--steps` steps with the real runs' checkpoint writes and quick
validation (the shipped `train` defaults, 2 threads), and the default budgets
(`conf/budget/lidc_*.yaml`) are priced at those costs: the predicted wall clock of each model, and
the prior steps that would make the latent model's equal to the UNet's. Nothing else may run
meanwhile. Usage (from the repository root, after `dvc repro prepare`; about 5 minutes):

  python -m bench.step_cost [--rounds 2] [--steps 100]"""

from __future__ import annotations

import argparse
from platform.config import load_config

import torch
from rich.console import Console
from rich.table import Table

from bench.quality import fastest, probe

BASE = ["train.threads=2"]  # the shipped log_every and quick validation, unlike bench.quality's probes
MODELS = {"latent model": ["model=medseglatdiff"], "UNet": ["model=unet"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100, help="steps per stage and probe")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: at least 1")
    budget = {name: load_config(["data=lidc", *overrides]).train for name, overrides in MODELS.items()}
    log_every = budget["latent model"].log_every
    if args.steps < 3 * log_every:  # the first interval is left out and a median needs two
        parser.error(f"--steps {args.steps}: at least {3 * log_every} (three of train.log_every={log_every})")
    torch.set_num_threads(2)
    probes: dict[str, list] = {name: [] for name in MODELS}
    for _ in range(args.rounds):  # alternating, so a slow spell of the machine hits both models
        for name, overrides in MODELS.items():
            probes[name].append(probe("lidc", overrides, args.steps, BASE))
    cost = {name: fastest(runs) for name, runs in probes.items()}

    ldm_per_step, ldm_fixed = cost["latent model"]
    ldm = budget["latent model"]
    ldm_other = (
        ldm_fixed + ldm.ae_steps * ldm_per_step["ae_steps"] + ldm.diffusion_steps * ldm_per_step["diffusion_steps"]
    )
    ldm_s = ldm_other + ldm.prior_steps * ldm_per_step["prior_steps"]
    unet_per_step, unet_fixed = cost["UNet"]
    unet_steps = budget["UNet"].ae_steps + budget["UNet"].diffusion_steps  # the segmenter sums both keys
    unet_s = unet_fixed + unet_steps * unet_per_step["diffusion_steps"]
    equal_prior = int((unet_s - ldm_other) / ldm_per_step["prior_steps"])

    table = Table(title=f"LIDC step costs, best of {args.rounds} alternating probes of {args.steps} steps")
    for column in ("model", "stage", "s per step", "default steps", "predicted s"):
        table.add_column(column, justify="right")
    for stage, key in (("autoencoder", "ae_steps"), ("prior", "prior_steps"), ("diffusion", "diffusion_steps")):
        steps = getattr(ldm, key)
        table.add_row("latent model", stage, f"{ldm_per_step[key]:.4f}", str(steps), f"{steps * ldm_per_step[key]:.0f}")
    table.add_row("latent model", "fixed", "", "", f"{ldm_fixed:.0f}")
    table.add_row(
        "UNet", "segmenter", f"{unet_per_step['diffusion_steps']:.4f}", str(unet_steps), f"{unet_s - unet_fixed:.0f}"
    )
    table.add_row("UNet", "fixed", "", "", f"{unet_fixed:.0f}")
    Console().print(table)
    print(
        f"predicted: latent model {ldm_s:.0f} s, UNet {unet_s:.0f} s (ratio {ldm_s / unet_s:.3f}); "
        f"prior steps for an equal wall clock: {equal_prior} (default {ldm.prior_steps})"
    )
    print(
        f"RESULT ldm_predicted_s={ldm_s:.0f} unet_predicted_s={unet_s:.0f} ratio={ldm_s / unet_s:.3f} "
        f"equal_prior_steps={equal_prior} default_prior_steps={ldm.prior_steps} "
        f"ae_s_per_step={ldm_per_step['ae_steps']:.4f} prior_s_per_step={ldm_per_step['prior_steps']:.4f} "
        f"diffusion_s_per_step={ldm_per_step['diffusion_steps']:.4f} "
        f"unet_s_per_step={unet_per_step['diffusion_steps']:.4f} "
        f"ldm_fixed_s={ldm_fixed:.0f} unet_fixed_s={unet_fixed:.0f} rounds={args.rounds} steps={args.steps}"
    )


if __name__ == "__main__":
    main()
