"""Checkpoints: written atomically (temporary name, then rename), read with weights_only=True."""

from __future__ import annotations

from pathlib import Path
from platform.atomic import atomic_write
from platform.errors import UsageError
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"  # the file name of a run folder's checkpoint


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` (tensors, numbers, strings, lists, dicts) to `path`; never half-written."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint; raises UsageError naming the file when it is missing or corrupt."""
    if not path.is_file():
        raise UsageError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle: all mean "cannot use this file"
        raise UsageError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
