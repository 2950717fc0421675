"""Shared fixtures. Tests that need the DVC-pulled data/ skip locally without it and fail in CI."""

from __future__ import annotations

import os
from pathlib import Path
from platform.config import load_config
from platform.data.prepare import prepare_dataset

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


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
    "train.diffusion_steps=4",
    "train.log_every=2",
    "train.eval_images=4",
    "train.eval_samples=2",
    "train.ddim_steps=2",
    "model.denoiser_channels=[16,32]",
    "model.attention_levels=[false,true]",
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


@pytest.fixture
def study_env(prepared_synthetic):
    """make(results, dashboard_port) → environment for `python -m platform.study` subprocesses."""

    def make(results: Path, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "STUDY_RESULTS": str(results),
            "STUDY_PREPARED": str(prepared_synthetic),
            "STUDY_DASHBOARD_PORT": str(port),
            "RAY_AUTH_MODE": "token",
        }

    return make


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
