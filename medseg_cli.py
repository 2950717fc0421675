"""Console entry points (`medseg-study`, `medseg-train`, `medseg-evaluate`, `medseg-prepare`).

Our package is called `platform` and shadows the standard library module of that name only when
its parent folder comes first on sys.path, as it does for `python -m platform.*` run from the
repository root. An installed console script runs from anywhere, where the standard library would
win: so each entry point puts this file's folder first and imports our package before calling it
(`platform/__init__.py` re-exports the standard library's names, so nothing else notices)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)


def _main(module: str) -> int:
    if ROOT in sys.path:
        sys.path.remove(ROOT)
    sys.path.insert(0, ROOT)
    loaded = sys.modules.get("platform")
    if loaded is not None and not hasattr(loaded, "__path__"):  # the standard library's module
        del sys.modules["platform"]
    return int(importlib.import_module(module).main() or 0)


def study() -> int:
    return _main("platform.study")


def train() -> int:
    return _main("platform.train")


def evaluate() -> int:
    return _main("platform.evaluate")


def prepare() -> int:
    return _main("platform.data.prepare")
