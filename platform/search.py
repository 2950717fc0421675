"""StudySpec → a Ray Tune `Tuner`: OptunaSearch (define-by-run), scheduler, resources, storage."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from platform.spec import SpecError, StudySpec
from platform.trial import TrialContext, run_trial
from typing import Any

import optuna  # already imported by ray.tune.search.optuna
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

TUNE_DIR = "tune"  # results/<study>/tune: Tune's experiment state, what `resume` restores


class SearchSpace:
    """Optuna define-by-run space: a conditional parameter is only suggested when its `when` holds.

    A class, not a closure: OptunaSearch pickles the space with its state for `resume`."""

    def __init__(self, spec: StudySpec) -> None:
        self.parameters = spec.search
        self.base = dict(item.split("=", 1) for item in spec.base if "=" in item)

    def __call__(self, trial: Any) -> None:
        chosen: dict[str, Any] = {}
        for q in self.parameters:
            if any(str(chosen.get(k, self.base.get(k))).lower() != str(v).lower() for k, v in q.when):
                continue
            if q.type == "categorical":
                chosen[q.key] = trial.suggest_categorical(q.key, list(q.choices))
            elif q.type == "int":
                chosen[q.key] = trial.suggest_int(q.key, int(q.low), int(q.high))  # type: ignore[arg-type]
            else:
                chosen[q.key] = trial.suggest_float(q.key, q.low, q.high, log=q.type == "log_float")


class FinalResultOptunaSearch(OptunaSearch):
    """Optuna hears only each trial's final result (its objectives).

    Per-step training reports carry losses, not objectives: single-objective OptunaSearch would
    look the objective up in them (KeyError), and a trial replayed after `resume` would report
    into an Optuna trial that is already complete. Pruning is Tune's scheduler's job here."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        # A trial the scheduler stopped ends without objectives. OptunaSearch records that as PRUNED
        # for one objective, but with several it tells [None, None], which Optuna rejects (the trial
        # would stay RUNNING in the database): hand it no result, so it is PRUNED either way.
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if not error and result is not None and any(result.get(m) is None for m in metrics):
            result = None
        super().on_trial_complete(trial_id, result, error)


class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II, the multi-objective sampler, whose pickle leaves its thread lock out.

    Tune pickles the searcher, sampler included, into its experiment state (what `resume`
    restores). Optuna 5.1's genetic samplers hold a `threading.Lock`, which cannot be pickled: every
    study with two objectives (the default one) failed before its first trial."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


class PrunedRows(Callback):
    """A Tune callback: when a trial ends without having completed its row, the scheduler stopped it."""

    def __init__(self, spec: StudySpec, results_dir: str) -> None:
        self.spec, self.results_dir = spec, results_dir

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from platform.trial_rows import mark_pruned

        mark_pruned(self.spec, Path(self.results_dir), trial.trial_id, trial.last_result or {})


def feasible_concurrency(spec: StudySpec, cluster_cpus: float, largest_node_cpus: float) -> int:
    """How many trials can run at once; raises SpecError when not even one fits the cluster."""
    r = spec.resources
    if r.cpus_per_worker > largest_node_cpus + 1e-9:
        raise SpecError(
            f"resources.cpus_per_worker: {r.cpus_per_worker} CPUs per worker but the largest node has "
            f"{largest_node_cpus:g}; lower it"
        )
    if spec.cpus_per_trial > cluster_cpus + 1e-9:
        fit = max(0.1, (cluster_cpus - r.trial_cpus) / r.workers)
        raise SpecError(
            f"resources: one trial needs {r.trial_cpus:g} + {r.workers} × {r.cpus_per_worker:g} = "
            f"{spec.cpus_per_trial:g} CPUs but the cluster has {cluster_cpus:g}; e.g. set "
            f"resources.cpus_per_worker: {math.floor(fit * 10) / 10:g} (with trial_cpus: {r.trial_cpus:g}) "
            f"or fewer workers"
        )
    return max(1, min(r.concurrent_trials, int((cluster_cpus + 1e-9) // spec.cpus_per_trial)))


def make_searcher(spec: StudySpec, results_dir: Path) -> Any:
    metrics = [o.metric for o in spec.objectives]
    modes = [o.mode for o in spec.objectives]
    multi = len(metrics) > 1
    sampler = PicklableNSGAIISampler(seed=spec.seed) if multi else optuna.samplers.TPESampler(seed=spec.seed)
    storage = optuna.storages.RDBStorage(f"sqlite:///{results_dir / 'optuna.db'}")
    return FinalResultOptunaSearch(
        space=SearchSpace(spec),
        metric=metrics if multi else metrics[0],
        mode=modes if multi else modes[0],
        points_to_evaluate=[dict(spec.reference)] if spec.reference else None,  # the reference runs first
        sampler=sampler,
        study_name=spec.name,
        storage=storage,
    )


def make_scheduler(spec: StudySpec) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    p = spec.pruning
    if p.kind == "asha":
        return ASHAScheduler(
            time_attr=p.time_attr, metric=p.metric, mode=p.mode, grace_period=p.grace_period, max_t=10**6
        )
    if p.kind == "median":
        return MedianStoppingRule(
            time_attr=p.time_attr,
            metric=p.metric,
            mode=p.mode,
            grace_period=p.grace_period,
            min_samples_required=2,
        )
    return FIFOScheduler()


def trainable(context: TrialContext) -> Any:
    from ray import tune

    with_context = tune.with_parameters(run_trial, context=context)
    return tune.with_resources(with_context, {"CPU": context.spec.resources.trial_cpus})


def _allow_partial_results() -> None:
    # Training reports (loss per step) and the final report (objectives) carry different keys;
    # Tune's strict check would demand the objectives in every report. Driver process only.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


def make_tuner(spec: StudySpec, context: TrialContext, concurrency: int, trials: int, callbacks: list) -> Any:
    from ray import tune

    _allow_partial_results()
    results_dir = Path(context.results_dir)
    return tune.Tuner(
        trainable(context),
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(spec, results_dir),
            scheduler=make_scheduler(spec),
            num_samples=trials,
            max_concurrent_trials=concurrency,
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(results_dir),
            callbacks=[*callbacks, PrunedRows(spec, context.results_dir)],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def restore_tuner(context: TrialContext, callbacks: list) -> Any:
    from ray import tune

    _allow_partial_results()
    path = str(Path(context.results_dir) / TUNE_DIR)
    if not tune.Tuner.can_restore(path):
        raise SpecError(f"{path}: no Tune experiment state to resume")
    # Errored trials stay errored: a NaN trial is a result, and Optuna was already told it failed.
    return tune.Tuner.restore(
        path, trainable(context), resume_unfinished=True, resume_errored=False, restart_errored=False
    )
