"""One trial of a study: Ray Train fit on workers, then ensemble evaluation, then result rows.

Runs inside a Ray Tune function trial. Training metrics flow back per logged step through
`TuneReportCallback` (for schedulers and the live table); the trial's final report carries the
objectives. Rows are written by the trial (platform/trial_rows.py), never by the driver."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from platform.atomic import write_text
from platform.config import config_to_yaml, load_config
from platform.config_types import Config
from platform.spec import StudySpec
from platform.trial_rows import TrialRows, completed_row, objective_values
from platform.trial_worker import restarts, train_worker, worker_outcome
from typing import Any

import polars as pl


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a study shares: its spec, folders and provenance."""

    spec: StudySpec
    results_dir: str  # results/<study>, absolute
    prepared_dir: str  # absolute
    git_commit: str
    data_version: str


def stage_store_dir(results_dir: str | Path) -> Path:
    """The store of finished stages every study under one results folder shares."""
    return Path(results_dir).parent / "stages"


def run_id(trial_id: str, repeat: int, repeats: int) -> str:
    """The name of one run of a trial: the Tune trial id, plus `-r<k>` when configurations repeat."""
    return trial_id if repeats == 1 else f"{trial_id}-r{repeat}"


def trial_config(context: TrialContext, params: dict[str, Any], trial_id: str, repeat: int = 0) -> Config:
    store = stage_store_dir(context.results_dir) if context.spec.reuse_stages else ""
    return load_config(
        [
            *context.spec.overrides(params, repeat),
            f"train.prepared_dir={context.prepared_dir}",
            f"train.runs_dir={context.results_dir}/runs",
            f"train.run_name='{trial_id}'",  # quoted: Hydra reads an id like 6e695544 as the float inf
            f"train.stage_store={store}",
            "train.threads=1",
        ]
    )


def run_trial(params: dict[str, Any], context: TrialContext) -> None:
    """The Tune trainable: each repeat (seed) fits on Ray Train workers, is evaluated and writes its
    row; Tune and Optuna hear the objectives' mean over the repeats."""
    import ray.tune

    tune_id = ray.tune.get_context().get_trial_id()
    spec = context.spec
    rows = [_run_repeat(params, context, tune_id, r) for r in range(spec.repeats)]
    values = [objective_values(row, spec) for row in rows]
    mean = {k: sum(v[k] for v in values) / len(values) for k in values[0]}
    reused = ",".join(sorted({s for row in rows for s in row["reused_stages"] or []})) or "-"
    ray.tune.report(mean | {"status": "completed", "reused": reused})


def _run_repeat(params: dict[str, Any], context: TrialContext, tune_id: str, repeat: int) -> dict[str, Any]:
    """One seed of a trial: its completed row (raises RuntimeError, after writing a failed row, on failure)."""
    spec, results = context.spec, Path(context.results_dir)
    trial_id = run_id(tune_id, repeat, spec.repeats)
    done = completed_row(results / "trials" / f"{trial_id}.parquet")
    if done is not None:  # Tune's snapshot predates this run's end (driver killed): replay, don't retrain
        return done
    config = trial_config(context, params, trial_id, repeat)
    origin = {
        "git_commit": context.git_commit,
        "data_version": context.data_version,
        "tune_trial_id": tune_id,
        "seed": config.train.seed,
    }
    rows = TrialRows.start(spec, results, trial_id, params, origin)
    tic = time.perf_counter()
    run_dir = Path(config.train.runs_dir) / trial_id
    write_text(run_dir / "config.yaml", config_to_yaml(config))  # what `study evaluate` re-loads
    failure = _train_on_workers(config, spec, trial_id, results)
    outcome = worker_outcome(run_dir)
    values = {
        "train_s": time.perf_counter() - tic,
        "restarts": restarts(run_dir),
        "node_ids": outcome["node_ids"],
        "checkpoint": str(run_dir / "checkpoint.pt"),
    }
    failure = failure or outcome["failure"]
    if not failure:
        try:
            values |= _evaluate(config, run_dir, spec, trial_id, results)
        except Exception as exc:  # a broken checkpoint or evaluation must still leave a row saying why
            failure = f"evaluation: {type(exc).__name__}: {_last_line(exc)}"
    values["wall_s"] = time.perf_counter() - tic
    if failure:
        rows.failed(values, failure)
        raise RuntimeError(f"trial {trial_id} failed: {failure}")
    return rows.completed(values, run_dir)


def _train_on_workers(config: Config, spec: StudySpec, trial_id: str, results: Path) -> str:
    """Fit on Ray Train workers (restarted from the last checkpoint up to max_failures times).

    Returns '' or why the workers failed more often than max_failures allows."""
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    res = spec.resources
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
            callbacks=[TuneReportCallback()],  # type: ignore[list-item]  # a Train callback at runtime
            failure_config=ray.train.FailureConfig(max_failures=res.max_failures),
        ),
    )
    try:
        trainer.fit()
    except Exception as exc:
        return f"{type(exc).__name__}: {_last_line(exc)}"
    return ""


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else repr(exc))[:500]


def _evaluate(config: Config, run_dir: Path, spec: StudySpec, trial_id: str, results: Path) -> dict[str, float]:
    """Sample ensembles on the spec's split; writes the images shard and the run's figures."""
    from platform.build import load_trained
    from platform.evaluation.ensembles import EvaluationSettings
    from platform.evaluation.figures import confidence_panels, risk_coverage, uncertainty_panels
    from platform.evaluation.registry import SUMMARY_METRICS
    from platform.evaluation.runs import evaluate_model
    from platform.results import write_table

    import torch

    e = spec.evaluation
    tic = time.perf_counter()
    torch.set_num_threads(max(1, os.cpu_count() or 1) if spec.resources.concurrent_trials == 1 else 1)
    settings = EvaluationSettings(
        samples=e.samples,
        steps=e.steps,
        seed=config.train.seed,
        max_images=e.images,
        border_radius=e.border_radius,
        panels=4,
        uncertainty_threshold=None if e.split == "val" else 0.5,  # chosen on validation, never on test
    )
    model, _ = load_trained(run_dir, config)
    result, images = evaluate_model(model, config, e.split, settings)
    images = images.with_columns(pl.lit(spec.name).alias("study"), pl.lit(trial_id).alias("trial_id"))
    write_table(images, results / "images" / f"{trial_id}.parquet")
    write_table(result.reliability, run_dir / "reliability.parquet")
    if result.panels:
        confidence_panels(result.panels, run_dir / "panels.png")
        uncertainty_panels(result.panels, run_dir / "uncertainty.png")
    risk_coverage(images, run_dir / "risk_coverage.png", f"trial {trial_id}")
    values = {k: result.summary[k] for k in (*SUMMARY_METRICS, "uncertainty_threshold")}
    values |= _codec_reconstruction(model, config, e.split)
    return values | {"eval_s": time.perf_counter() - tic}


def _codec_reconstruction(model: Any, config: Config, split: str) -> dict[str, float]:
    """What the WCE weight acts on: the mask autoencoder's Dice on small and large lesions."""
    from platform.data.loader import PreparedSplit
    from platform.evaluation.reconstruction import reconstruction_by_size

    codec = getattr(model, "codec", None)
    if codec is None or not any(True for _ in codec.parameters()):  # the UNet, pixel-space diffusion
        return {}
    return reconstruction_by_size(codec, PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, split))
