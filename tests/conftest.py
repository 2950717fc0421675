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
