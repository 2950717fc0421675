"""Shared fixtures. Tests that need the DVC-pulled data/ skip locally without it and fail in CI."""

from __future__ import annotations

import os
from pathlib import Path

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
