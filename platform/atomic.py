"""Atomic writes: a temporary name beside the target, then one rename. Readers and a killed
writer see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from platform.errors import UsageError


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` then rename tmp onto `path`; the temporary file is removed on any failure.

    Raises UsageError naming `path` when the disk refuses (full, read-only, not a directory)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def replace_directory(new: Path, target: Path) -> None:
    """Swap the finished folder `new` into `target` with renames only (the old one is removed after)."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
