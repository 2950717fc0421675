"""Shared fixtures. Tests that need the DVC-pulled data/ skip locally without it and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from platform.config import load_config
from platform.data.prepare import prepare_dataset

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

# The tests that start a local Ray instance (or use the session's smoke study): whole modules, or
# one test of a module. Under pytest-xdist (`-n 2`, pyproject.toml) they form one unit of work for
# one worker, run one after another: they use fixed dashboard ports, `ray stop --force` ends every
# Ray process on the machine, and a session fixture (the smoke study) runs once per worker. Their
# time is mostly Ray starting actors, with the CPU mostly idle, so the other worker runs the rest of
# the suite beside them. (Named here, not marked: xdist's `loadgroup` suffix no longer reaches node
# ids in pytest 9.)
RAY_TESTS = {
    "test_cluster.py",
    "test_faults.py",
    "test_pruning.py",
    "test_study.py",
    "test_study_external.py",
    "test_readme_commands.py::test_first_run_creates_the_token_and_later_commands_use_it",
}
RAY_FIXTURES = {"smoke", "study_env", "user_home"}  # a test using one of these must be in RAY_TESTS


def runs_ray(nodeid: str) -> bool:
    path, _, name = nodeid.partition("::")
    module = Path(path).name
    return module in RAY_TESTS or f"{module}::{name.split('[')[0]}" in RAY_TESTS


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class RayTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if runs_ray(nodeid) else nodeid

    return RayTestsTogether(config, log)


def pytest_itemcollected(item: pytest.Item) -> None:
    """A test that uses a Ray study fixture outside RAY_TESTS would run beside the Ray worker."""
    if RAY_FIXTURES & set(getattr(item, "fixturenames", ())) and not runs_ray(item.nodeid):
        raise pytest.UsageError(f"{item.nodeid} runs a Ray study: add it to RAY_TESTS in tests/conftest.py")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The pulled data/ folder; in CI (CI=true) its absence is a failure, not a skip."""
    if not (DATA / "lidc-idri-crops").is_dir():
        message = f"{DATA} is missing: run `dvc pull` (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return DATA


TINY = [
    "data=synthetic",
    "data.image_size=32",
    "data.synthetic_count=16",
    "train.batch_size=4",
    "train.ae_steps=4",
    "train.prior_steps=4",
    "train.diffusion_steps=4",
    "train.log_every=2",
    "train.eval_images=4",
    "train.eval_samples=2",
    "train.ddim_steps=2",
    "model.denoiser_channels=[16,32]",
    "model.attention_levels=[false,true]",
    "model.prior_channels=[8,16]",
]


@pytest.fixture
def tiny(tmp_path):
    """make(*overrides) → a tiny Config on a prepared 16-image synthetic set under tmp_path."""

    def make(*extra):
        config = load_config(
            [*TINY, f"train.prepared_dir={tmp_path}/prepared", f"train.runs_dir={tmp_path}/runs", *extra]
        )
        if not (tmp_path / "prepared" / "synthetic").exists():
            prepare_dataset(config.data, tmp_path / "prepared" / "synthetic")
        return config

    return make


@pytest.fixture(scope="session")
def prepared_synthetic(tmp_path_factory) -> Path:
    """A prepared/ folder holding the 32 px synthetic set that studies/smoke.yaml expects."""
    root = tmp_path_factory.mktemp("prepared")
    prepare_dataset(load_config(["data=synthetic", "data.image_size=32"]).data, root / "synthetic")
    return root


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a new shell with only the venv activated: no RAY_* variable (not even
    those the Makefile exports), nothing inherited but the venv's PATH, HOME set to `home`."""
    venv_bin = str(Path(sys.executable).parent)
    env = {"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in ("CI", "TMPDIR") if k in os.environ})
    env.update(extra)
    assert not any(k.startswith("RAY_") for k in env), "a user's shell has no RAY_* variables"
    return env


@pytest.fixture(scope="session")
def user_home(tmp_path_factory) -> Path:
    """A HOME shared by the tests' study commands (its ~/.ray/auth_token appears on the first run)."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def study_env(prepared_synthetic, user_home):
    """make(results, dashboard_port) → a user's environment for `python -m platform.study` subprocesses."""

    def make(results: Path, port: int) -> dict[str, str]:
        return user_env(
            user_home,
            STUDY_RESULTS=str(results),
            STUDY_PREPARED=str(prepared_synthetic),
            STUDY_DASHBOARD_PORT=str(port),
        )

    return make


def _dashboard_answers(port: int, home: Path) -> bool:
    token_file = home / ".ray" / "auth_token"
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"} if token_file.exists() else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/api/version", headers=headers), timeout=5
        ) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def smoke(tmp_path_factory, prepared_synthetic):
    """One real run of studies/smoke.yaml; the dashboard is polled while it runs."""
    results, home = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("new-home")
    # As a user types it in a new shell on a new machine: no RAY_* variable, no ~/.ray/auth_token yet.
    env = user_env(
        home, STUDY_RESULTS=str(results), STUDY_PREPARED=str(prepared_synthetic), STUDY_DASHBOARD_PORT="8275"
    )
    assert not (home / ".ray" / "auth_token").exists()
    driver = subprocess.Popen(
        [sys.executable, "-m", "platform.study", "run", "studies/smoke.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    answered = False
    deadline = time.time() + 600
    while driver.poll() is None and time.time() < deadline:
        answered = answered or _dashboard_answers(8275, home)
        time.sleep(2)
    output = driver.communicate(timeout=60)[0]
    assert driver.returncode == 0, output[-3000:]
    return results / "smoke", env, output, answered


def write_spec(path: Path, **changes) -> Path:
    """studies/smoke.yaml with top-level keys replaced (nested dicts merged one level deep)."""
    import yaml

    spec = yaml.safe_load((REPO / "studies" / "smoke.yaml").read_text())
    for key, value in changes.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    path.write_text(yaml.safe_dump(spec))
    return path


def optuna_trials(study_dir: Path) -> list:
    """The Optuna trials a study stored beside its results (study name = folder name)."""
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{study_dir / 'optuna.db'}")
    return optuna.load_study(study_name=study_dir.name, storage=storage).trials


def copy_lidc_patients(data_root: Path, folder: Path, count: int) -> Path:
    """The last `count` patients of the pulled LIDC crops, copied to `folder` (an unseen-data folder)."""
    import shutil

    for patient in sorted((data_root / "lidc-idri-crops").iterdir())[-count:]:
        shutil.copytree(patient, folder / patient.name)
    return folder
