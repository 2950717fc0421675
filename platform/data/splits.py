"""Seeded train/val/test splits over groups (patients): a group never spans two splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def split_groups(groups: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """Map each distinct group to 'train', 'val' or 'test', reproducibly for a given seed.

    Fractions count groups, not images. With at least three groups every non-zero
    fraction gets at least one group, so tiny datasets still have each split."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    n = len(unique)
    n_test = _count(n, test_fraction)
    n_val = _count(n - n_test, val_fraction * n / max(n - n_test, 1))
    assignment = {}
    for rank, index in enumerate(order):
        split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        assignment[unique[index]] = split
    return assignment


def _count(n: int, fraction: float) -> int:
    if fraction <= 0 or n < 3:
        return 0
    return min(max(1, round(n * fraction)), n - 1)
