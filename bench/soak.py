"""Soak: run a small study again and again for a stated time while killing Ray Train workers at
random, then count trials completed, worker restarts and rows lost (target: zero lost).

Usage (from the repository root): python -m bench.soak [--minutes 10] [--kill-every 8] [--seed 0]"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import yaml

SPEC = {
    "name": "soak",
    "dataset": "synthetic",
    "image_size": 32,
    "trials": 3,
    "base": ["model.denoiser_channels=[16,32]", "model.attention_levels=[false,true]"],
    "budget": {"ae_steps": 40, "diffusion_steps": 200, "batch_size": 8, "log_every": 10},
    "search": {"model.wce_weight": {"type": "log_float", "low": 1.0, "high": 100.0}},
    "objectives": [{"metric": "dice", "mode": "max"}],
    "evaluation": {"samples": 4, "steps": 5, "images": 8},
    "resources": {"workers": 1, "cpus_per_worker": 1.0, "trial_cpus": 0.1, "max_failures": 5},
}


def kill_a_worker(study_dir: Path, rng: random.Random) -> bool:
    """SIGKILL one live training worker of the study, if any is running; True if one was killed."""
    candidates = []
    for outcome in study_dir.glob("runs/*/worker-*.json"):
        try:
            pid = json.loads(outcome.read_text())["pid"]
            os.kill(pid, 0)
            candidates.append(pid)
        except (OSError, ValueError, KeyError):
            continue
    if not candidates:
        return False
    try:
        os.kill(rng.choice(candidates), signal.SIGKILL)
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=8.0, help="mean seconds between worker kills")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = Path(tempfile.mkdtemp(prefix="soak-"))
    env = {**os.environ, "STUDY_RESULTS": str(results)}
    deadline = time.time() + 60 * args.minutes
    planned = kills = rounds = 0
    while time.time() < deadline:
        name = f"soak-{rounds}"
        spec = results / f"{name}.yaml"
        spec.write_text(yaml.safe_dump({**SPEC, "name": name}))
        driver = subprocess.Popen(
            [sys.executable, "-m", "platform.study", "run", str(spec)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        next_kill = time.time() + rng.expovariate(1 / args.kill_every)
        while driver.poll() is None:
            if time.time() >= next_kill:
                kills += kill_a_worker(results / name, rng)
                next_kill = time.time() + rng.expovariate(1 / args.kill_every)
            time.sleep(0.5)
        planned += SPEC["trials"]
        rounds += 1
    trials = pl.read_parquet(results / "*" / "trials" / "*.parquet") if list(results.glob("*/trials/*")) else None
    completed = int((trials["status"] == "completed").sum()) if trials is not None else 0
    failed = int((trials["status"] == "failed").sum()) if trials is not None else 0
    restarts = int(trials["restarts"].fill_null(0).sum()) if trials is not None else 0
    lost = planned - completed - failed
    print(
        f"{'studies':<20}{rounds:>8}\n{'trials planned':<20}{planned:>8}\n{'completed':<20}{completed:>8}\n"
        f"{'failed':<20}{failed:>8}\n{'workers killed':<20}{kills:>8}\n{'restarts recorded':<20}{restarts:>8}\n"
        f"{'rows lost':<20}{lost:>8}"
    )
    print(
        f"RESULT minutes={args.minutes:g} studies={rounds} planned={planned} completed={completed} failed={failed} "
        f"kills={kills} restarts={restarts} rows_lost={lost}"
    )


if __name__ == "__main__":
    main()
