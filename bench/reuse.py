"""Stage reuse across trials: `studies/guidance.yaml` with and without it, in one run.

Both studies run the same spec (same seed, so the sampler proposes the same configurations in
the same order) at a stated small budget — the spec's step budgets divided by `--divide`, 128 px
LIDC, evaluation on 16 validation images with 4 samples of 10 DDIM steps — one after the other
on a local Ray instance, each in its own results folder (the one without reuse has no store).
Reported: total trial compute (Σ over trials of training + evaluation seconds, from the rows),
each study's wall time, the stages each trial loaded, and whether trials with identical
configurations got identical metrics. Usage (from the repository root, after `dvc repro`):

  python -m bench.reuse [--trials 6] [--divide 10]"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from platform.evaluation.registry import SUMMARY_METRICS

import polars as pl
import yaml

ROOT = Path("runs/bench-reuse")


def run_study(spec: dict, reuse: bool) -> tuple[pl.DataFrame, float]:
    """Run one study in its own results folder; its trial rows (in start order) and wall seconds."""
    name = "reuse" if reuse else "no-reuse"
    results = ROOT / name
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    path = results / "spec.yaml"
    path.write_text(yaml.safe_dump({**spec, "name": "guidance", "reuse_stages": reuse}, sort_keys=False))
    env = {**os.environ, "STUDY_RESULTS": str(results)}
    tic = time.perf_counter()
    subprocess.run([sys.executable, "-m", "platform.study", "run", str(path)], env=env, check=True)
    wall = time.perf_counter() - tic
    rows = pl.read_parquet(results / "guidance" / "trials" / "*.parquet").sort("started_at", "trial_id")
    return rows, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--divide", type=int, default=10, help="divide the spec's step budgets by this")
    args = parser.parse_args()
    spec = yaml.safe_load(Path("studies/guidance.yaml").read_text())
    budget = spec["budget"]
    for key in ("ae_steps", "prior_steps", "diffusion_steps"):
        budget[key] = max(1, budget[key] // args.divide)
    budget["log_every"] = 5
    spec |= {"trials": args.trials, "evaluation": {"samples": 4, "steps": 10, "images": 16, "split": "val"}}
    print("budget:", budget, "trials:", args.trials)
    without, wall_without = run_study(spec, reuse=False)
    with_reuse, wall_with = run_study(spec, reuse=True)

    params = [c for c in without.columns if c.startswith("p_")]
    compute = {}
    for label, rows in (("without", without), ("with", with_reuse)):
        compute[label] = float((rows["train_s"] + rows["eval_s"]).sum())
        print(f"\n{label} reuse: {rows.height} trials, compute {compute[label]:.0f} s")
        print(rows.select("trial_id", *params, "reused_stages", "train_s", "eval_s", "dice_nonempty", "ece"))
    same_configs = without.select(params).equals(with_reuse.select(params))
    metrics = [m for m in SUMMARY_METRICS if m in without.columns]
    differences = [
        abs(a - b)
        for m in metrics
        for a, b in zip(without[m].to_list(), with_reuse[m].to_list(), strict=True)
        if a is not None and b is not None
    ]
    largest = max(differences, default=float("nan"))
    loaded = with_reuse["reused_stages"].list.len().sum()
    print(f"\nsame configurations in the same order: {same_configs}; largest metric difference: {largest:.2e}")
    print(
        f"RESULT compute_ratio={compute['without'] / compute['with']:.2f} "
        f"wall_ratio={wall_without / wall_with:.2f} compute_without_s={compute['without']:.0f} "
        f"compute_with_s={compute['with']:.0f} wall_without_s={wall_without:.0f} wall_with_s={wall_with:.0f} "
        f"stages_loaded={loaded} same_configs={same_configs} max_metric_diff={largest:.2e} trials={args.trials}"
    )


if __name__ == "__main__":
    main()
