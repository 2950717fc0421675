"""Where a result came from: the git commit of the code and the DVC version of the data."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Provenance:
    git_commit: str  # `git rev-parse HEAD`, or "unknown" outside a checkout
    data_version: str  # the md5 of data/ recorded in data.dvc, or "unknown"


def git_commit(repo: Path = REPO) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def data_version(dvc_file: Path = REPO / "data.dvc") -> str:
    if not dvc_file.is_file():
        return "unknown"
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", "")) or "unknown"


def provenance(repo: Path = REPO) -> Provenance:
    return Provenance(git_commit(repo), data_version(repo / "data.dvc"))
