"""Injected faults: a killed Ray Train worker, a NaN trial, failing and concurrent result writes."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from platform.errors import UsageError
from platform.results import query, write_table

import optuna
import polars as pl
import pytest

from tests.conftest import REPO, optuna_trials, write_spec


def _run(spec, env, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "platform.study", "run", str(spec)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_killed_worker_restarts_from_its_last_checkpoint(tmp_path, study_env):
    spec = write_spec(
        tmp_path / "killed.yaml",
        name="killed",
        trials=1,
        search={"model.wce_weight": {"type": "float", "low": 4.0, "high": 6.0}},
        budget={"ae_steps": 20, "diffusion_steps": 400, "log_every": 20},
        resources={"max_failures": 2},
    )
    env = study_env(tmp_path / "results", 8277)
    driver = subprocess.Popen(
        [sys.executable, "-m", "platform.study", "run", str(spec)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    runs = tmp_path / "results" / "killed" / "runs"
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and driver.poll() is None:
        for run in runs.glob("*"):
            outcome = run / "worker-0.json"
            curves = run / "checkpoint.pt"
            if outcome.exists() and curves.exists() and _diffusion_step(run) >= 100:
                killed = json.loads(outcome.read_text())["pid"]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.5)
    output = driver.communicate(timeout=600)[0]
    assert killed is not None, "the trial finished before a worker could be killed"
    assert driver.returncode == 0, output[-3000:]
    row = pl.read_parquet(tmp_path / "results" / "killed" / "trials" / "*.parquet").row(0, named=True)
    assert row["status"] == "completed" and row["restarts"] == 1
    curves = pl.read_parquet(tmp_path / "results" / "killed" / "curves" / "*.parquet")
    diffusion = curves.filter(pl.col("stage") == "diffusion")["step"].to_list()
    assert diffusion == list(range(20, 401, 20))  # resumed where it stopped: no step twice, none missing
    assert curves.filter(pl.col("stage") == "autoencoder").height == 1  # the autoencoder was not retrained


def _diffusion_step(run) -> int:
    from platform.checkpoint import load_checkpoint

    try:
        state = load_checkpoint(run / "checkpoint.pt")["state"]
    except UsageError:
        return 0
    return state["step"] if state["stage"] == "diffusion" else 0


@pytest.mark.slow
def test_nan_trial_is_failed_with_its_reason_and_the_study_goes_on(tmp_path, study_env):
    spec = write_spec(
        tmp_path / "nan.yaml",
        name="nan",
        trials=2,  # the reference runs first and diverges; with seed 1 Optuna's next trial draws lr 0.002
        search={"train.lr": {"type": "categorical", "choices": [1.0e12, 0.002]}},
        reference={"train.lr": 1.0e12},
        seed=1,
    )
    result = _run(spec, study_env(tmp_path / "results", 8278))
    trials = pl.read_parquet(tmp_path / "results" / "nan" / "trials" / "*.parquet")
    assert trials.height == 2, result.stdout[-3000:]
    failed = trials.filter(pl.col("p_lr") > 1)
    assert failed.height == 1 and (failed["status"] == "failed").all()
    assert failed["failure"].str.contains("loss became nan").all()
    assert failed["restarts"].max() == 0  # a deterministic failure is not retried
    good = trials.filter(pl.col("p_lr") < 1)
    assert good.height == 1 and (good["status"] == "completed").all(), good.select("status", "failure").rows()
    states = {t.params["train.lr"]: t.state for t in optuna_trials(tmp_path / "results" / "nan")}
    assert states[1.0e12] == optuna.trial.TrialState.FAIL
    assert states[0.002] == optuna.trial.TrialState.COMPLETE


def test_failed_result_write_names_the_file_and_keeps_the_old_row(tmp_path, monkeypatch):
    path = tmp_path / "trials" / "t1.parquet"
    write_table(pl.DataFrame({"trial_id": ["t1"], "dice": [0.5]}), path)

    def disk_full(self, file, *args, **kwargs):
        open(file, "wb").write(b"PAR1 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", disk_full)
    with pytest.raises(UsageError, match=r"t1\.parquet: cannot write \(No space left on device\)"):
        write_table(pl.DataFrame({"trial_id": ["t1"], "dice": [0.9]}), path)
    monkeypatch.undo()
    assert pl.read_parquet(path)["dice"].to_list() == [0.5]
    assert sorted(p.name for p in path.parent.iterdir()) == ["t1.parquet"]  # no temporary file left
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(UsageError, match="file/trials/t2.parquet: cannot write"):
        write_table(pl.DataFrame({"x": [1]}), blocked / "trials" / "t2.parquet")


def _writer(root: str, study: str, rounds: int) -> None:
    from pathlib import Path

    for n in range(1, rounds + 1):
        frame = pl.DataFrame({"trial_id": [f"{study}-{i}" for i in range(n)], "n": [n] * n, "check": [n * 7] * n})
        write_table(frame, Path(root) / study / "trials" / "shard.parquet")


def test_concurrent_writers_and_a_reader_never_see_torn_rows(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), s, 150)) for s in ("a", "b")]
    for w in writers:
        w.start()
    while len(list(tmp_path.glob("*/trials/shard.parquet"))) < 2:
        time.sleep(0.01)
    reads = 0
    while any(w.is_alive() for w in writers) or reads < 5:
        frame = query(tmp_path, "SELECT trial_id, n, check FROM trials")
        assert (frame["check"] == frame["n"] * 7).all()
        for n, rows in frame.group_by("n").len().iter_rows():
            assert rows % n == 0  # whole shards only
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    final = query(tmp_path, "SELECT COUNT(*) AS rows FROM trials")
    assert final["rows"][0] == 300  # the last full shard of each writer
