"""Study spec validation: every malformed spec fails before anything starts, naming the problem."""

import copy
import os
import subprocess
import sys
from pathlib import Path
from platform.search import feasible_concurrency
from platform.spec import SpecError, load_spec, parse_spec

import pytest
import yaml

from tests.conftest import REPO

SMOKE = yaml.safe_load((REPO / "studies" / "smoke.yaml").read_text())


def _with(path: str, value):
    spec = copy.deepcopy(SMOKE)
    keys = path.split("/")
    target = spec
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return spec


BAD = [
    ("unknown top-level key", _with("epochs", 3), r"epochs: unknown key"),
    ("missing name", _with("name", KeyError), r"name: required"),
    ("path traversal in name", _with("name", "../../etc"), r"name: '\.\./\.\./etc'"),
    ("slash in name", _with("name", "a/b"), r"name: 'a/b'"),
    ("trials not an int", _with("trials", "many"), r"trials: expected int"),
    ("negative trials", _with("trials", -2), r"trials: -2 must be ≥ 1"),
    ("bool as int", _with("image_size", True), r"image_size: expected int"),
    ("unknown dataset", _with("dataset", "mnist"), r"base: .*data/mnist"),
    ("image size not a multiple of 8", _with("image_size", 30), r"data\.image_size"),
    ("inverted range", _with("search/model.wce_weight/low", 200.0), r"low=200\.0 must be below high=100\.0"),
    ("empty range", _with("search/model.wce_weight/high", 1.0), r"must be below"),
    ("NaN bound", _with("search/model.wce_weight/low", float("nan")), r"not a finite number"),
    ("log range through zero", _with("search/model.wce_weight/low", 0.0), r"must be > 0 for a log-uniform"),
    ("unknown parameter type", _with("search/model.wce_weight/type", "uniform"), r"type: 'uniform' is not one of"),
    (
        "unknown searched key",
        _with("search/model.nonsense", {"type": "float", "low": 0, "high": 1}),
        r"search\.model\.nonsense",
    ),
    (
        "searched key outside model/train",
        _with("search/data.root", {"type": "categorical", "choices": ["/"]}),
        r"searched keys are model",
    ),
    ("empty categorical", _with("search/model.conditioning/choices", []), r"choices: expected a non-empty list"),
    ("mixed-type categorical", _with("search/model.conditioning/choices", ["cfg", 1]), r"mixes types"),
    (
        "bad categorical value",
        _with("search/model.conditioning/choices", ["concat", "crossattn"]),
        r"model\.conditioning: 'crossattn'",
    ),
    ("unknown metric", _with("objectives", [{"metric": "accuracy"}]), r"objectives\[0\]\.metric: 'accuracy'"),
    ("bad mode", _with("objectives", [{"metric": "dice", "mode": "up"}]), r"mode: 'up' must be min or max"),
    ("no objectives", _with("objectives", []), r"objectives: expected a non-empty list"),
    ("negative budget", _with("budget/ae_steps", -5), r"budget\.ae_steps: -5 must not be negative"),
    ("unknown budget key", _with("budget/epochs", 3), r"budget\.epochs: unknown key"),
    ("zero workers", _with("resources/workers", 0), r"resources\.workers: 0 must be ≥ 1"),
    ("negative cpus", _with("resources/cpus_per_worker", -1.0), r"cpus_per_worker must be > 0"),
    ("string cpus", _with("resources/cpus_per_worker", "two"), r"resources\.cpus_per_worker: expected float"),
    ("bad pruning", _with("pruning", {"kind": "hyperband"}), r"pruning\.kind: 'hyperband'"),
    ("bad pruning metric", _with("pruning", {"kind": "asha", "metric": "dice"}), r"pruning\.metric: 'dice'"),
    ("zero pruning interval", _with("pruning", {"kind": "asha", "every": 0}), r"pruning\.every: 0 must be ≥ 1"),
    ("zero repeats", _with("repeats", 0), r"repeats: 0 must be ≥ 1"),
    ("reference not searched", _with("reference", {"model.ae_width": 8}), r"reference\.model\.ae_width: not a"),
    ("reference not a value", _with("reference", {"model.wce_weight": [1, 2]}), r"reference\.model\.wce_weight: exp"),
    ("bad split", _with("evaluation/split", "train"), r"evaluation\.split: 'train'"),
    ("_target_ in base", _with("base", ["+model._target_=os.system"]), r"cannot instantiate"),
    (
        "condition on unknown key",
        _with("search/model.guidance_scale/when", {"model.p_uncond": 0.1}),
        r"when: 'model\.p_uncond' is neither searched",
    ),
    ("guidance without cfg in base", _with("base", ["model.guidance_scale=2"]), r"model\.guidance_scale"),
]


@pytest.mark.parametrize(("raw", "message"), [(raw, msg) for _, raw, msg in BAD], ids=[name for name, *_ in BAD])
def test_bad_spec_names_the_problem(raw, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


def test_shipped_specs_are_valid():
    for path in sorted((REPO / "studies").glob("*.yaml")):
        spec = load_spec(path)
        assert spec.name == path.stem and spec.trials >= 1


def test_spec_overrides_and_parameter_columns():
    spec = load_spec(REPO / "studies" / "smoke.yaml")
    overrides = spec.overrides({"model.wce_weight": 3.5, "model.conditioning": "cfg"})
    assert overrides[:2] == ["data=synthetic", "data.image_size=32"]
    assert overrides[-2:] == ["model.wce_weight=3.5", "model.conditioning=cfg"]
    assert set(spec.parameter_columns()) == {"p_wce_weight", "p_conditioning", "p_guidance_scale"}


def test_infeasible_resources_are_refused_with_a_fix():
    spec = parse_spec(_with("resources", {"workers": 2, "cpus_per_worker": 1.0, "trial_cpus": 0.1}))
    with pytest.raises(
        SpecError, match=r"needs 0\.1 \+ 2 × 1 = 2\.1 CPUs but the cluster has 2.*cpus_per_worker: 0\.9"
    ):
        feasible_concurrency(spec, 2.0, 2.0)
    fits = parse_spec(
        _with("resources", {"workers": 2, "cpus_per_worker": 0.9, "trial_cpus": 0.1, "concurrent_trials": 4})
    )
    assert feasible_concurrency(fits, 2.0, 2.0) == 1  # never more trials than can hold their workers
    with pytest.raises(SpecError, match="largest node has 1"):
        feasible_concurrency(parse_spec(_with("resources/cpus_per_worker", 1.5)), 4.0, 1.0)


def test_run_exits_2_on_bad_spec_before_starting_anything(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("trials", -1)))
    for args in (["run", str(bad)], ["run", str(tmp_path / "missing.yaml")], ["resume", "nope"], ["status", "nope"]):
        result = subprocess.run(
            [sys.executable, "-m", "platform.study", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "STUDY_RESULTS": str(tmp_path)},
        )
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "error:" in result.stdout and "Traceback" not in result.stdout + result.stderr
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    assert "not valid YAML" in str(pytest.raises(SpecError, load_spec, Path(tmp_path / "broken.yaml")).value)


@pytest.mark.parametrize(("raw", "message"), [(raw, msg) for _, raw, msg in BAD], ids=[name for name, *_ in BAD])
def test_every_bad_spec_exits_2_with_one_line_before_ray_starts(raw, message, tmp_path, capsys, monkeypatch):
    from platform import study

    monkeypatch.setenv("STUDY_RESULTS", str(tmp_path / "results"))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert study.main(["run", str(path)]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("error:") and len(out.splitlines()) == 1
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
    assert not (tmp_path / "results").exists()  # nothing started, nothing written


class _FakeTrial:
    def __init__(self, choices):
        self.choices, self.asked = choices, []

    def suggest_categorical(self, name, options):
        self.asked.append(name)
        return self.choices[name]

    def suggest_float(self, name, low, high, log=False):
        self.asked.append((name, low, high, log))
        return low


def test_search_space_suggests_conditional_parameters_only_when_they_apply():
    from platform.search import SearchSpace

    spec = load_spec(REPO / "studies" / "smoke.yaml")
    concat = _FakeTrial({"model.conditioning": "concat"})
    SearchSpace(spec)(concat)
    assert concat.asked == [("model.wce_weight", 1.0, 100.0, True), "model.conditioning"]
    cfg = _FakeTrial({"model.conditioning": "cfg"})
    SearchSpace(spec)(cfg)
    assert cfg.asked[-1] == ("model.guidance_scale", 1.0, 3.0, False)


def test_scheduler_follows_the_spec():
    from platform.search import make_scheduler

    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule

    assert isinstance(make_scheduler(parse_spec(SMOKE)), FIFOScheduler)
    assert isinstance(
        make_scheduler(parse_spec(_with("pruning", {"kind": "asha", "grace_period": 3}))), AsyncHyperBandScheduler
    )
    assert isinstance(make_scheduler(parse_spec(_with("pruning", {"kind": "median"}))), MedianStoppingRule)


def test_read_spec_reads_once_and_keeps_the_text_or_the_renamed_spec(tmp_path):
    from platform.spec import read_spec

    path = tmp_path / "s.yaml"
    path.write_text((REPO / "studies" / "smoke.yaml").read_text())
    spec, text = read_spec(path)
    assert spec.name == "smoke" and text == path.read_text()  # comments kept as written
    renamed, renamed_text = read_spec(path, "other")
    assert renamed.name == "other" and yaml.safe_load(renamed_text)["name"] == "other"
    assert renamed.search == spec.search


@pytest.mark.parametrize("objectives", [1, 2])
def test_a_stopped_trial_is_pruned_in_optuna_with_one_or_several_objectives(tmp_path, objectives):
    """Tune ends a trial the scheduler stopped with its last training report, which holds no
    objective; Optuna must record PRUNED (with several objectives, not a failed tell)."""
    from platform.search import make_searcher

    import optuna

    raw = _with("objectives", [{"metric": "dice", "mode": "max"}, {"metric": "ece", "mode": "min"}][:objectives])
    searcher = make_searcher(parse_spec(raw), tmp_path)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"stage": "diffusion", "step": 10, "val_dice_nonempty": 0.1})
    searcher.suggest("t2")
    searcher.on_trial_complete("t2", {"dice": 0.5, "ece": 0.01})
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state for t in optuna.load_study(study_name="smoke", storage=storage).trials]
    assert states == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("objectives", [1, 2])
def test_the_searcher_pickles_and_restores_with_one_or_several_objectives(tmp_path, objectives):
    """Tune pickles the searcher into its experiment state when the Tuner is made, and `resume`
    unpickles it: optuna 5.1's NSGA-II sampler (several objectives) holds a lock that cannot be."""
    from platform.search import make_searcher

    from ray import cloudpickle

    raw = _with("objectives", [{"metric": "dice", "mode": "max"}, {"metric": "ece", "mode": "min"}][:objectives])
    searcher = make_searcher(parse_spec(raw), tmp_path)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"dice": 0.5, "ece": 0.01})
    restored = cloudpickle.loads(cloudpickle.dumps(searcher))
    assert restored.suggest("t2") is not None  # the restored sampler samples (with a lock of its own)
    restored.on_trial_complete("t2", {"dice": 0.6, "ece": 0.02})
