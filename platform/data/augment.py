"""Cheap, standard augmentation for every model: flips, 90° rotations, a small intensity jitter.

Geometric transforms act on image and mask together (so they stay aligned); the intensity jitter
acts on the image only. Everything is drawn from the caller's seeded generator."""

from __future__ import annotations

import numpy as np

JITTER_SCALE = 0.1  # multiplicative, on images normalised to zero mean and unit variance
JITTER_SHIFT = 0.1  # additive, in the same units


def augment(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """images B×C×S×S float32, masks B×1×S×S → the same shapes, each image transformed on its own."""
    out_images, out_masks = np.empty_like(images), np.empty_like(masks)
    for b in range(images.shape[0]):
        image, mask = images[b], masks[b]
        turns = int(rng.integers(0, 4))
        flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
        image, mask = np.rot90(image, turns, axes=(-2, -1)), np.rot90(mask, turns, axes=(-2, -1))
        if flip_h:
            image, mask = image[..., ::-1], mask[..., ::-1]
        if flip_v:
            image, mask = image[..., ::-1, :], mask[..., ::-1, :]
        scale = 1.0 + rng.uniform(-JITTER_SCALE, JITTER_SCALE)
        shift = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT)
        out_images[b] = image * scale + shift
        out_masks[b] = mask
    return out_images, out_masks
