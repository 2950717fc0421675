"""Prepared splits as memory-mapped tensors, and seeded batches drawing one annotator per image."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from platform.errors import DatasetError

import numpy as np
import torch


@dataclass
class PreparedSplit:
    """One split of `prepared/<dataset>/`: images N×C×S×S float32, masks N×A×S×S uint8 (mmap)."""

    images: np.ndarray
    masks: np.ndarray

    @classmethod
    def open(cls, dataset_dir: Path, split: str) -> PreparedSplit:
        """Raises DatasetError naming the folder when it was never prepared or is empty."""
        folder = dataset_dir / split
        if not (folder / "images.npy").is_file():
            raise DatasetError(f"{folder}: not prepared (run `dvc repro` or `python -m platform.data.prepare`)")
        split_data = cls(np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "masks.npy", mmap_mode="r"))
        if len(split_data) == 0:
            raise DatasetError(f"{folder}: split is empty")
        return split_data

    def check_matches(self, image_size: int, channels: int, where: Path) -> None:
        """Raise DatasetError when the prepared arrays differ from what the config asks for."""
        if self.images.shape[-1] != image_size or self.images.shape[1] != channels:
            raise DatasetError(
                f"{where}: prepared at {self.images.shape[-1]} px with {self.images.shape[1]} "
                f"channel(s) but data.image_size={image_size}, data.channels={channels} "
                f"(change params.yaml and run `dvc repro`)"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def annotators_marking(self) -> np.ndarray:
        return self.masks.reshape(*self.masks.shape[:2], -1).any(-1).sum(1)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Random images B×C×S×S and one randomly drawn annotator's mask each, B×1×S×S.

        Drawing an annotator per step teaches the distribution of expert opinions."""
        index = np.sort(rng.choice(len(self), size=size, replace=size > len(self)))
        annotator = rng.integers(0, self.masks.shape[1], size=size)
        masks = np.stack([self.masks[i, a] for i, a in zip(index, annotator, strict=True)])[:, None]
        return torch.from_numpy(np.ascontiguousarray(self.images[index])), torch.from_numpy(masks).float()

    def all_masks(self) -> torch.Tensor:
        """Every annotator mask as N·A×1×S×S float (for statistics such as the latent scale)."""
        return torch.from_numpy(np.asarray(self.masks, dtype=np.float32).reshape(-1, 1, *self.masks.shape[2:]))


def dataset_stats(dataset_dir: Path) -> dict:
    return json.loads((dataset_dir / "stats.json").read_text())
