"""Platform overhead: a study's wall time against the sum of its trials' training + evaluation time.

Runs the study (a fresh name each time), then reads `trials` rows and the driver's wall time
(Tune + Ray Train start-up, scheduling, result writing are the overhead; Ray's own start-up is
measured separately as `ray_init_s`).
Usage (from the repository root): python -m bench.overhead studies/smoke.yaml [--name NAME]"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec")
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    name = args.name or f"overhead-{Path(args.spec).stem}-{int(time.time())}"
    tic = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "platform.study", "run", args.spec, "--name", name],
        check=True,
    )
    command_s = time.perf_counter() - tic
    results = Path(os.environ.get("STUDY_RESULTS", "results")) / name
    trials = pl.read_parquet(results / "trials" / "*.parquet")
    driver = pl.read_parquet(results / "driver.parquet")["wall_s"].sum()
    work = float((trials["train_s"].fill_null(0) + trials["eval_s"].fill_null(0)).sum())
    print(f"{'trials':<28}{trials.height:>10}")
    print(f"{'sum of train + eval (s)':<28}{work:>10.1f}")
    print(f"{'Tuner.fit wall (s)':<28}{driver:>10.1f}")
    print(f"{'whole command (s)':<28}{command_s:>10.1f}")
    print(
        f"RESULT spec={Path(args.spec).stem} trials={trials.height} work_s={work:.1f} tuner_s={driver:.1f} "
        f"command_s={command_s:.1f} overhead_tuner={driver / work - 1:.3f} overhead_command={command_s / work - 1:.3f}"
    )


if __name__ == "__main__":
    main()
