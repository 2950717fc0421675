"""Scaling on this machine: one trial with 1 vs 2 Ray Train workers (training images/s), and a
2-trial study with 1 vs 2 concurrent trials (study wall time). Synthetic data at 32 px.

Usage (from the repository root): python -m bench.scaling [--steps 300]"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

BASE = {
    "dataset": "synthetic",
    "image_size": 32,
    "trials": 1,
    "base": ["model.denoiser_channels=[16,32]", "model.attention_levels=[false,true]"],
    "search": {"model.wce_weight": {"type": "float", "low": 4.0, "high": 6.0}},
    "objectives": [{"metric": "dice", "mode": "max"}],
    "evaluation": {"samples": 2, "steps": 5, "images": 8},
}


def run_study(results: Path, name: str, steps: int, trials: int, resources: dict) -> tuple[float, pl.DataFrame]:
    spec = {
        **BASE,
        "name": name,
        "trials": trials,
        "resources": {"trial_cpus": 0.1, **resources},
        "budget": {"ae_steps": steps // 3, "diffusion_steps": steps, "batch_size": 16, "log_every": 25},
    }
    path = results / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    tic = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "platform.study", "run", str(path)],
        check=True,
        capture_output=True,
        env={**os.environ, "STUDY_RESULTS": str(results)},
    )
    return time.perf_counter() - tic, pl.read_parquet(results / name / "curves" / "*.parquet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    results = Path(tempfile.mkdtemp(prefix="scaling-"))
    rates = {}
    for workers in (1, 2):
        _, curves = run_study(
            results,
            f"workers{workers}",
            args.steps,
            1,
            {"workers": workers, "cpus_per_worker": round(1.8 / workers, 2)},
        )
        diffusion = curves.filter((pl.col("stage") == "diffusion") & (pl.col("step") > 25))
        rates[workers] = float(diffusion["images_per_s"].mean()) * workers  # rank 0's rate × ranks
    walls = {}
    for concurrent in (1, 2):
        walls[concurrent], _ = run_study(
            results,
            f"concurrent{concurrent}",
            args.steps,
            2,
            {"workers": 1, "cpus_per_worker": 0.9, "concurrent_trials": concurrent},
        )
    print(f"{'setting':<36}{'value':>10}")
    print(f"{'1 worker × 1.8 CPU (images/s)':<36}{rates[1]:>10.1f}")
    print(f"{'2 workers × 0.9 CPU (images/s)':<36}{rates[2]:>10.1f}")
    print(f"{'2 trials, 1 at a time (wall s)':<36}{walls[1]:>10.1f}")
    print(f"{'2 trials, 2 at a time (wall s)':<36}{walls[2]:>10.1f}")
    print(
        f"RESULT workers1_ips={rates[1]:.1f} workers2_ips={rates[2]:.1f} worker_speedup={rates[2] / rates[1]:.2f} "
        f"concurrent1_s={walls[1]:.1f} concurrent2_s={walls[2]:.1f} concurrency_speedup={walls[1] / walls[2]:.2f}"
    )


if __name__ == "__main__":
    main()
