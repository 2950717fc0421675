"""Finished training stages, content-addressed, shared by the trials (and studies) that need them.

A stage's key hashes everything its result depends on (`stage_key`); its entry is one file
`<key>.pt` written atomically, so a killed writer leaves nothing loadable. `claim` holds an
exclusive `flock` on `locks/<key>.lock` while the stage is looked up or trained: a second trial
needing the same unfinished stage waits, then loads it. The kernel drops the lock of a killed
holder, so a crash never blocks the store."""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from platform.checkpoint import load_checkpoint, save_checkpoint
from platform.errors import UsageError
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The code a stage's result depends on: the models and the loop that trains them.
CODE = ("models", "platform/training.py", "platform/build.py", "platform/data/loader.py", "platform/data/augment.py")


def code_version() -> str:
    """A hash of the model and training-loop source (any edit there invalidates every stage)."""
    digest = hashlib.sha256()
    for entry in CODE:
        path = REPO / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(REPO)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def stage_key(name: str, depends_on: dict[str, Any], upstream: list[str]) -> str:
    """The content address of one stage: its name, what it reads, and its upstream stages' keys."""
    text = json.dumps({"stage": name, "depends_on": depends_on, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class StageStore:
    """A folder of finished stages: `<key>.pt` (weights + values + curves) and `locks/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> dict[str, Any] | None:
        """The finished entry under `key`, or None (an unreadable file counts as missing)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return load_checkpoint(path)
        except UsageError:
            return None

    def save(self, key: str, entry: dict[str, Any]) -> None:
        save_checkpoint(self.path(key), entry)

    @contextmanager
    def claim(self, key: str) -> Iterator[dict[str, Any] | None]:
        """Hold `key`'s lock; yields the finished entry, or None when the holder must train it."""
        locks = self.root / "locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            handle = open(locks / f"{key}.lock", "a+")  # noqa: SIM115 - held across the yield
        except OSError as exc:
            raise UsageError(f"{self.root}: cannot use the stage store ({exc.strerror or exc})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks while another trial trains this stage
            yield self.load(key)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.pt"))
