"""One trial of a study: Ray Train fit on workers, then ensemble evaluation, then result rows.

Runs inside a Ray Tune function trial. Training metrics flow back per logged step through
`TuneReportCallback` (for schedulers and the live table); the trial's final report carries the
objectives. Rows are written by this function, never by the driver."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from platform.config import load_config
from platform.config_types import Config
from platform.results import trial_frame, write_table
from platform.spec import StudySpec, parameter_column
from typing import Any

import polars as pl

ATTEMPTS = "attempts.txt"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares: its spec, folders and provenance."""

    spec: StudySpec
    results_dir: str  # results/<study>, absolute
    prepared_dir: str  # absolute
    git_commit: str
    data_version: str


def trial_config(context: TrialContext, params: dict[str, Any], trial_id: str) -> Config:
    return load_config(
        [
            *context.spec.overrides(params),
            f"train.prepared_dir={context.prepared_dir}",
            f"train.runs_dir={context.results_dir}/runs",
            f"train.run_name={trial_id}",
            "train.threads=1",
        ]
    )


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker loop: resume from the run folder, train, report each logged step."""
    from platform.data.loader import PreparedSplit
    from platform.training import fit

    import ray.train
    import torch
    import torch.distributed as dist

    config: Config = loop_config["config"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(loop_config["threads"])))
    run_dir = Path(config.train.runs_dir) / (config.train.run_name or "run")
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        attempts = run_dir / ATTEMPTS
        count = int(attempts.read_text()) + 1 if attempts.exists() else 1
        attempts.write_text(str(count))
    train = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "train")
    node = ray.get_runtime_context().get_node_id()
    outcome = run_dir / f"worker-{rank}.json"
    outcome.write_text(json.dumps({"node_id": node, "pid": os.getpid(), "failure": ""}))

    def report(stage: str, step: int, total: int, loss: float, ips: float) -> None:
        ray.train.report({"stage": stage, "step": step, "loss": loss, "images_per_s": ips, "node_id": node})

    try:
        fit(config, train, run_dir, report, rank, world if world > 1 and dist.is_initialized() else 1)
    except FloatingPointError as exc:  # deterministic: restarting the workers would fail the same way
        outcome.write_text(json.dumps({"node_id": node, "pid": os.getpid(), "failure": str(exc)}))


def run_trial(params: dict[str, Any], context: TrialContext) -> None:
    """The Tune trainable: fit on Ray Train workers, evaluate, write rows, report the objectives."""
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial_id = ray.tune.get_context().get_trial_id()
    spec, res = context.spec, context.spec.resources
    results = Path(context.results_dir)
    done = _completed_row(results / "trials" / f"{trial_id}.parquet")
    if done is not None:  # Tune's snapshot predates this trial's end (driver killed): replay, don't retrain
        ray.tune.report({o.metric: done[o.metric] for o in spec.objectives} | {"status": "completed"})
        return
    config = trial_config(context, params, trial_id)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    base_row = {
        "study": spec.name,
        "trial_id": trial_id,
        "started_at": started,
        "git_commit": context.git_commit,
        "data_version": context.data_version,
        "workers": res.workers,
        **{parameter_column(k): v for k, v in params.items()},
    }
    columns = spec.parameter_columns()
    write_table(trial_frame({**base_row, "status": "running"}, columns), results / "trials" / f"{trial_id}.parquet")
    tic = time.perf_counter()
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"config": config, "threads": max(1, round(res.cpus_per_worker))},
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers,
            use_gpu=res.gpus_per_worker > 0,
            placement_strategy=res.placement.upper(),
            resources_per_worker={
                "CPU": res.cpus_per_worker,
                **({"GPU": res.gpus_per_worker} if res.gpus_per_worker else {}),
            },
        ),
        run_config=ray.train.RunConfig(
            name=f"train-{trial_id}",
            storage_path=str(results / "ray-train"),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=res.max_failures),
        ),
    )
    run_dir = Path(config.train.runs_dir) / trial_id
    try:
        trainer.fit()
        last = _worker_outcome(run_dir)
    except Exception as exc:  # workers failed more often than max_failures allows: record why
        last = {**_worker_outcome(run_dir), "failure": f"{type(exc).__name__}: {_last_line(exc)}"}
    train_s = time.perf_counter() - tic
    attempts = int((run_dir / ATTEMPTS).read_text()) if (run_dir / ATTEMPTS).exists() else 1
    common = {
        **base_row,
        "train_s": train_s,
        "restarts": attempts - 1,
        "node_ids": last["node_ids"],
        "checkpoint": str(run_dir / "checkpoint.pt"),
    }
    if not last.get("failure"):
        try:
            metrics = _evaluate(config, run_dir, spec, trial_id, results)
        except Exception as exc:  # a broken checkpoint or evaluation must still leave a row saying why
            last = {**last, "failure": f"evaluation: {type(exc).__name__}: {_last_line(exc)}"}
    if last.get("failure"):
        row = {
            **common,
            "status": "failed",
            "failure": last["failure"],
            "wall_s": time.perf_counter() - tic,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_table(trial_frame(row, columns), results / "trials" / f"{trial_id}.parquet")
        raise RuntimeError(f"trial {trial_id} failed: {last['failure']}")
    curves = _curves(run_dir, spec.name, trial_id)
    write_table(curves, results / "curves" / f"{trial_id}.parquet")
    epochs = float(curves["epoch"].max()) if curves.height else 0.0
    row = {
        **common,
        **metrics,
        "status": "completed",
        "failure": "",
        "epochs": epochs,
        "steps": int(curves["step"].max()) if curves.height else 0,
        "wall_s": time.perf_counter() - tic,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_table(trial_frame(row, columns), results / "trials" / f"{trial_id}.parquet")
    ray.tune.report({o.metric: row[o.metric] for o in spec.objectives} | {"status": "completed"})


def _completed_row(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    row = pl.read_parquet(path).row(0, named=True)
    return row if row["status"] == "completed" else None


def _worker_outcome(run_dir: Path) -> dict[str, str]:
    """Node ids of all ranks and the first failure any rank recorded (files in the run folder)."""
    outcomes = [json.loads(p.read_text()) for p in sorted(run_dir.glob("worker-*.json"))]
    return {
        "node_ids": ",".join(sorted({o["node_id"] for o in outcomes})),
        "failure": next((o["failure"] for o in outcomes if o["failure"]), ""),
    }


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else repr(exc))[:500]


def _evaluate(config: Config, run_dir: Path, spec: StudySpec, trial_id: str, results: Path) -> dict[str, float]:
    from platform.evaluate import evaluate_checkpoint
    from platform.evaluation.ensembles import EvaluationSettings
    from platform.evaluation.figures import confidence_panels

    import torch

    e = spec.evaluation
    tic = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1) if spec.resources.concurrent_trials == 1 else 1)
    settings = EvaluationSettings(
        samples=e.samples, steps=e.steps, seed=spec.seed, max_images=e.images, border_radius=e.border_radius, panels=4
    )
    result, images, _ = evaluate_checkpoint(config, run_dir, e.split, settings)
    images = images.with_columns(pl.lit(spec.name).alias("study"), pl.lit(trial_id).alias("trial_id"))
    write_table(images, results / "images" / f"{trial_id}.parquet")
    write_table(result.reliability, run_dir / "reliability.parquet")
    if result.panels:
        confidence_panels(result.panels, run_dir / "panels.png")
    keys = (
        "dice",
        "dice_nonempty",
        "iou",
        "dice_per_sample",
        "ece",
        "ece_border",
        "brier",
        "nll",
        "ged",
        "hm_iou",
        "ueo",
        "uncertainty_error_r",
    )
    return {k: result.summary[k] for k in keys} | {"eval_s": time.perf_counter() - tic}


def _curves(run_dir: Path, study: str, trial_id: str) -> pl.DataFrame:
    from platform.checkpoint import load_checkpoint

    metrics = load_checkpoint(run_dir / "checkpoint.pt")["state"]["metrics"]
    frame = (
        pl.DataFrame(metrics)
        if metrics
        else pl.DataFrame(schema={"stage": pl.Utf8, "step": pl.Int64, "epoch": pl.Float64, "loss": pl.Float64})
    )
    return frame.with_columns(pl.lit(study).alias("study"), pl.lit(trial_id).alias("trial_id"))
