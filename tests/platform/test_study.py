"""The study platform end to end on a real local Ray instance: smoke study, rows, query, report,
dashboard, and resume after the driver is killed."""

import os
import signal
import subprocess
import sys
import time

import optuna
import polars as pl
import pytest
import yaml

from tests.conftest import REPO, optuna_trials, write_spec

pytestmark = pytest.mark.slow


def _study(args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform.study", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_smoke_study_rows_match_optuna(smoke):
    study_dir, _, output, _ = smoke
    assert "Ray dashboard: http://127.0.0.1:8275" in output
    trials = pl.read_parquet(study_dir / "trials" / "*.parquet")
    assert trials.height == 3 and trials["trial_id"].n_unique() == 3
    assert (trials["status"] == "completed").all()
    for key in ("dice", "iou", "ece", "brier", "hm_iou"):
        assert trials[key].is_between(0, 1).all(), key
    assert trials["ged"].is_between(0, 2).all() and (trials["wall_s"] > 0).all()
    assert trials["p_wce_weight"].is_between(1, 100).all()
    assert set(trials["p_conditioning"]) <= {"concat", "cfg"}
    concat = trials.filter(pl.col("p_conditioning") == "concat")
    assert concat["p_guidance_scale"].is_null().all()  # conditional parameter absent for concat
    assert (trials["node_ids"].str.len_chars() > 0).all()
    suggested = sorted(
        (round(t.params["model.wce_weight"], 9), t.params["model.conditioning"]) for t in optuna_trials(study_dir)
    )
    assert suggested == sorted((round(w, 9), c) for w, c in trials.select("p_wce_weight", "p_conditioning").rows())
    images = pl.read_parquet(study_dir / "images" / "*.parquet")
    assert images.height == 3 * 8 and set(images["trial_id"]) == set(trials["trial_id"])
    curves = pl.read_parquet(study_dir / "curves" / "*.parquet")
    assert set(curves["stage"]) == {"autoencoder", "prior", "diffusion"}


def test_rows_carry_the_git_commit_and_the_data_version(smoke):
    trials = pl.read_parquet(smoke[0] / "trials" / "*.parquet")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    md5 = yaml.safe_load((REPO / "data.dvc").read_text())["outs"][0]["md5"]
    assert len(head) == 40 and set(trials["git_commit"]) == {head}
    assert len(md5) > 10 and set(trials["data_version"]) == {md5}


def test_dashboard_answered_during_run(smoke):
    assert smoke[3], "the Ray dashboard never answered on 127.0.0.1 while the study ran"


def test_query_status_and_report(smoke):
    study_dir, env, _, _ = smoke
    result = _study(
        [
            "query",
            "SELECT p_conditioning, COUNT(*) AS n, AVG(dice) AS dice FROM trials "
            "GROUP BY p_conditioning ORDER BY p_conditioning",
            "--format",
            "csv",
        ],
        env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "p_conditioning,n,dice" and sum(int(line.split(",")[1]) for line in lines[1:]) == 3
    joined = _study(
        [
            "query",
            "SELECT t.trial_id, COUNT(*) AS images FROM images i JOIN trials t "
            "ON i.trial_id = t.trial_id GROUP BY t.trial_id",
            "--format",
            "csv",
        ],
        env,
    )
    assert joined.returncode == 0 and all(line.endswith(",8") for line in joined.stdout.strip().splitlines()[1:])
    gaps = _study(["query", "SELECT id, ece_bin_gaps FROM images LIMIT 1", "--format", "csv"], env)
    assert gaps.returncode == 0, gaps.stdout + gaps.stderr
    assert len(gaps.stdout.strip().splitlines()[1].split(",")[1].split()) == 10  # a list cell: one value per bin
    assert _study(["query", "SELECT nope FROM trials"], env).returncode == 2
    status = _study(["status", "smoke"], env)
    assert status.returncode == 0 and "3 completed" in status.stdout
    report = _study(["report", "smoke"], env)
    assert report.returncode == 0, report.stdout + report.stderr
    html = (study_dir / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "Question and answer" in html
    markdown = (study_dir / "report" / "report.md").read_text()
    answer = markdown.split("## Question and answer\n\n", 1)[1].split("\n", 1)[0]
    assert "is best on dice; against the runner-up" in answer and "patients)" in answer  # smoke has no reference
    assert "Wilcoxon" in html or "wilcoxon_p" in html


def test_resume_after_killing_the_driver(tmp_path, study_env):
    env = study_env(tmp_path, 8276)
    spec = write_spec(tmp_path / "smoke.yaml", trials=2)  # one finished before the kill, one after resume
    driver = subprocess.Popen(
        [sys.executable, "-m", "platform.study", "run", str(spec)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    trials_dir = tmp_path / "smoke" / "trials"
    deadline = time.time() + 400
    while time.time() < deadline:
        rows = pl.read_parquet(trials_dir / "*.parquet") if list(trials_dir.glob("*.parquet")) else None
        if rows is not None and (rows["status"] == "completed").sum() >= 1:
            break
        time.sleep(1)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started, as in a crash
    driver.wait()
    subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True, timeout=120)
    before = pl.read_parquet(trials_dir / "*.parquet").filter(pl.col("status") == "completed")
    assert before.height >= 1

    result = _study(["resume", "smoke"], env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    after = pl.read_parquet(trials_dir / "*.parquet")
    assert after.height == 2 and after["trial_id"].n_unique() == 2 and (after["status"] == "completed").all()
    kept = after.join(before.select("trial_id", "finished_at"), on="trial_id", suffix="_before")
    assert (kept["finished_at"] == kept["finished_at_before"]).all()  # finished trials were not rerun
    states = [t.state for t in optuna_trials(tmp_path / "smoke")]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
