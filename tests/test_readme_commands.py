"""The README's commands, run the way a user runs them: a new shell with only the venv activated.

Every subprocess here gets an environment built from scratch (`user_env`): no RAY_* variable (so
nothing the Makefile exports leaks in), a temporary HOME, the repository root as working directory.
The study itself is the session's `smoke` run, started in a HOME without ~/.ray/auth_token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import REPO, TINY, user_env

pytestmark = pytest.mark.slow


def _run(module: str, args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "module, args",
    [
        ("platform.study", ["--help"]),
        ("platform.study", ["run", "--help"]),
        ("platform.study", ["resume", "--help"]),
        ("platform.study", ["query", "--help"]),
        ("platform.study", ["report", "--help"]),
        ("platform.study", ["evaluate", "--help"]),
        ("platform.train", ["--help"]),
        ("platform.evaluate", ["--help"]),
        ("platform.data.summary", ["--help"]),
    ],
)
def test_help(module, args, tmp_path):
    result = _run(module, args, user_env(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage" in result.stdout.lower() or "python -m" in result.stdout


@pytest.mark.parametrize("script", ["medseg-study", "medseg-train", "medseg-evaluate", "medseg-prepare"])
def test_console_scripts_work_from_any_directory(script, tmp_path):
    binary = Path(sys.executable).parent / script
    result = subprocess.run(
        [str(binary), "--help"], cwd=tmp_path, env=user_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "python -m platform" in result.stdout  # our package, not the standard library's module


def test_first_run_creates_the_token_and_later_commands_use_it(smoke):
    study_dir, env, output, _ = smoke
    assert "Traceback" not in output and "AuthenticationError" not in output
    token = Path(env["HOME"]) / ".ray" / "auth_token"
    assert token.is_file() and len(token.read_text().strip()) >= 16  # made by the first run
    status = _run("platform.study", ["status", "smoke"], env)
    assert status.returncode == 0 and "3 completed" in status.stdout, status.stderr[-2000:]
    listed = _run("platform.study", ["list"], env)
    assert listed.returncode == 0 and "smoke" in listed.stdout
    anywhere = subprocess.run(
        [str(Path(sys.executable).parent / "medseg-study"), "status", "smoke"],
        cwd=env["HOME"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert anywhere.returncode == 0 and "3 completed" in anywhere.stdout, anywhere.stderr[-2000:]
    query = _run("platform.study", ["query", "SELECT COUNT(*) AS n FROM trials", "--format", "csv"], env)
    assert query.returncode == 0 and query.stdout.split() == ["n", "3"], query.stderr[-2000:]
    report = _run("platform.study", ["report", "smoke", "--out", str(study_dir.parent / "report-smoke")], env)
    assert report.returncode == 0 and (study_dir.parent / "report-smoke" / "report.html").is_file()
    # A later session: the token file exists now, and Ray starts again with it.
    resumed = _run("platform.study", ["resume", "smoke"], env)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stdout + resumed.stderr
    assert pl.read_parquet(study_dir / "trials" / "*.parquet").height == 3


def test_joining_a_cluster_without_a_token_is_one_line_and_exit_2(tmp_path, prepared_synthetic):
    env = user_env(tmp_path, STUDY_RESULTS=str(tmp_path / "results"), STUDY_PREPARED=str(prepared_synthetic))
    result = _run("platform.study", ["run", "studies/smoke.yaml", "--address", "127.0.0.1:6399"], env, 120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "RAY_AUTH_TOKEN" in lines[0] and "127.0.0.1:6399" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results" / "smoke").exists()  # nothing started, nothing written
    via_env = _run("platform.study", ["run", "studies/smoke.yaml"], {**env, "RAY_ADDRESS": "127.0.0.1:6399"}, 120)
    assert via_env.returncode == 2 and "RAY_AUTH_TOKEN" in via_env.stdout


def test_train_and_evaluate_a_tiny_run(tmp_path, prepared_synthetic):
    env = user_env(tmp_path)
    overrides = [*TINY, f"train.prepared_dir={prepared_synthetic}", f"train.runs_dir={tmp_path}/runs"]
    trained = _run("platform.train", [*overrides, "train.run_name=tiny"], env)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert "val Dice" in trained.stdout and (tmp_path / "runs" / "tiny" / "summary.json").is_file()
    evaluated = _run("platform.evaluate", [f"run={tmp_path}/runs/tiny", "samples=2", "steps=2", "images=4"], env)
    assert evaluated.returncode == 0, evaluated.stdout[-2000:] + evaluated.stderr[-2000:]
    assert "dice_nonempty" in evaluated.stdout
    assert (tmp_path / "runs" / "tiny" / "eval-val" / "summary.parquet").is_file()
    bad = _run("platform.train", ["model.guidance_scale=3"], env)
    assert bad.returncode == 2 and "model.guidance_scale" in bad.stdout and "Traceback" not in bad.stderr
