"""Pruning on validation quality end to end, with repeated seeds, on a real local Ray instance."""

import subprocess
import sys

import optuna
import polars as pl
import pytest

from tests.conftest import REPO, optuna_trials, write_spec

SMOKE_BASE = ["model.denoiser_channels=[16,32]", "model.attention_levels=[false,true]", "model.prior_channels=[8,16]"]


@pytest.mark.slow
def test_a_trial_that_learns_nothing_is_pruned_on_validation_dice_and_repeats_are_averaged(tmp_path, study_env):
    """The reference (lr 0.002) runs first with two seeds; a trial at lr 1e-9 samples garbage and ASHA
    stops it at its first validation round; its row says pruned, with the step and the value."""
    spec = write_spec(
        tmp_path / "prune.yaml",
        name="prune",
        trials=2,  # with seed 1 Optuna's second trial draws lr 1e-9
        repeats=2,
        search={"train.lr": {"type": "categorical", "choices": [0.002, 1.0e-9]}},
        reference={"train.lr": 0.002},
        # 20-step stages: with poly decay the reference would learn as little as lr 1e-9 (nothing to prune)
        base=[*SMOKE_BASE, "train.lr_schedule=constant"],
        budget={"ae_steps": 30, "prior_steps": 30, "diffusion_steps": 20},
        pruning={"kind": "asha", "every": 10, "images": 4, "steps": 3},
        seed=1,
    )
    results = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "platform.study", "run", str(spec)],
        cwd=REPO,
        env=study_env(results, 8279),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "PRUNED" in run.stdout  # the live table tells a stopped trial from a finished one
    rows = pl.read_parquet(results / "prune" / "trials" / "*.parquet").sort("started_at", "trial_id")
    reference = rows.filter(pl.col("tune_trial_id") == rows["tune_trial_id"][0])
    assert reference["seed"].to_list() == [1, 2] and (reference["status"] == "completed").all()
    assert reference["trial_id"].to_list() == [f"{reference['tune_trial_id'][0]}-r{r}" for r in (0, 1)]
    pruned = rows.filter(pl.col("status") == "pruned")
    assert pruned.height >= 1, rows.select("trial_id", "p_lr", "status", "failure").rows()
    assert (pruned["p_lr"] < 1e-6).all() and (pruned["steps"] < 20).all()
    assert pruned["failure"].str.contains(r"pruned by asha at diffusion step 10: val_dice_nonempty 0\.").all()
    curves = pl.read_parquet(results / "prune" / "curves" / "*.parquet")
    checked = curves.filter(pl.col("val_dice_nonempty").is_not_null())
    assert checked.height >= 2 and (checked["stage"] == "diffusion").all()
    states = [t.state for t in optuna_trials(results / "prune")]
    assert states[0] == optuna.trial.TrialState.COMPLETE and optuna.trial.TrialState.PRUNED in states
    first = optuna_trials(results / "prune")[0]
    assert first.values[0] == pytest.approx(reference["dice"].mean())  # Optuna heard the mean over seeds


def test_the_live_table_names_a_stopped_trial_pruned():
    from platform.live import LiveTrialTable
    from types import SimpleNamespace

    table = LiveTrialTable("t")
    finished = SimpleNamespace(trial_id="a", config={}, last_result={"status": "completed", "dice": 0.5})
    stopped = SimpleNamespace(trial_id="b", config={}, last_result={"val_dice_nonempty": 0.1, "step": 10})
    for trial in (finished, stopped):
        table.on_trial_complete(0, [], trial)
    assert table.rows["a"]["state"] == "TERMINATED" and table.rows["b"]["state"] == "PRUNED"
