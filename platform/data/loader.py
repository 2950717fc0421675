"""Prepared splits as memory-mapped tensors, and seeded batches drawing one annotator per image."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from platform.data.augment import augment
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

    def identity(self) -> str:
        """A hash of the split's contents (images and masks): what trained stages are keyed by."""
        digest = hashlib.blake2b(digest_size=12)
        for array in (self.images, self.masks):
            digest.update(f"{array.dtype}{array.shape}".encode())
            for start in range(0, len(array), 256):  # memory-mapped rows, hashed in place: no full copy
                digest.update(np.ascontiguousarray(array[start : start + 256]).data.cast("B"))
        return digest.hexdigest()

    @property
    def annotators_marking(self) -> np.ndarray:
        return self.masks.reshape(*self.masks.shape[:2], -1).any(-1).sum(1)

    def batch(
        self, rng: np.random.Generator, size: int, foreground_share: float = 0.0, augmented: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random images B×C×S×S and one randomly drawn annotator's mask each, B×1×S×S.

        Drawing an annotator per step teaches the distribution of expert opinions. A share
        `foreground_share` of the batch (rounded up) comes from images some annotator marked, with
        one of the marking annotators (nnU-Net oversamples foreground so: LIDC nodules cover under
        1 % of the pixels and half the slices are empty); a split without any foreground falls
        back to uniform draws. `augmented`: flips, 90° rotations and intensity jitter."""
        marked = self.marked_images
        forced = int(np.ceil(foreground_share * size)) if len(marked) else 0
        index = np.concatenate(
            [
                rng.choice(marked, size=forced, replace=forced > len(marked)),
                rng.choice(len(self), size=size - forced, replace=size - forced > len(self)),
            ]
        ).astype(np.int64)
        annotators = [self._annotator(i, rng, i_forced < forced) for i_forced, i in enumerate(index)]
        masks = np.stack([self.masks[i, a] for i, a in zip(index, annotators, strict=True)])[:, None]
        order = np.argsort(index, kind="stable")  # sorted reads from the memory map
        images, masks = np.ascontiguousarray(self.images[index[order]]), masks[order]
        if augmented:
            images, masks = augment(images, masks, rng)
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.ascontiguousarray(masks)).float()

    @cached_property
    def marked_images(self) -> np.ndarray:
        """Indices of the images on which at least one annotator marked foreground."""
        return np.flatnonzero(self.annotators_marking > 0)

    def _annotator(self, index: int, rng: np.random.Generator, marking_only: bool) -> int:
        if not marking_only:
            return int(rng.integers(0, self.masks.shape[1]))
        marking = np.flatnonzero(self.masks[index].reshape(self.masks.shape[1], -1).any(-1))
        return int(rng.choice(marking))

    def fitting_sample(self, size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to `size` evenly spaced images N×C×S×S and all their annotator masks N×A×S×S (float):
        what a stage fits its end-of-stage values on (the latent scale, the prior's threshold).
        Evenly spaced, not the first ones, so every patient of a patient-ordered split is seen."""
        index = np.unique(np.linspace(0, len(self) - 1, min(size, len(self))).round().astype(np.int64))
        images = np.ascontiguousarray(self.images[index], dtype=np.float32)
        masks = np.ascontiguousarray(self.masks[index], dtype=np.float32)
        return torch.from_numpy(images), torch.from_numpy(masks)


def dataset_stats(dataset_dir: Path) -> dict:
    return json.loads((dataset_dir / "stats.json").read_text())
