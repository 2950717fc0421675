"""Synthetic lesions: textured blobs with noise and several annotator outlines per image.

Instant, licence-free data for tests and demos. Annotators disagree the way experts do:
each traces the same lesion with its own scale and boundary wobble."""

from __future__ import annotations

from functools import partial
from platform.data.sample import Loaded, SampleRef
from platform.errors import DatasetError

import numpy as np
from scipy.ndimage import gaussian_filter


def synthetic_refs(
    count: int, size: int = 128, annotators: int = 3, channels: int = 1, seed: int = 0
) -> list[SampleRef]:
    """`count` synthetic samples; pairs of images share a `group` (a pretend patient)."""
    if count < 1 or size < 16 or annotators < 1 or channels not in (1, 3):
        raise DatasetError(
            f"synthetic: need count ≥ 1, size ≥ 16, annotators ≥ 1, channels 1 or 3; "
            f"got count={count} size={size} annotators={annotators} channels={channels}"
        )
    return [
        SampleRef(
            id=f"synthetic-{index:05d}",
            group=f"case-{index // 2:05d}",
            source=f"synthetic:seed={seed}:index={index}",
            load=partial(make_sample, size, annotators, channels, seed, index),
        )
        for index in range(count)
    ]


def make_sample(size: int, annotators: int, channels: int, seed: int, index: int) -> Loaded:
    """One image (size×size×channels uint8) and its annotator masks (annotators×size×size bool)."""
    rng = np.random.default_rng([seed, index])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    center = rng.uniform(0.3, 0.7, size=2) * size
    radius = rng.uniform(0.08, 0.25) * size
    harmonics = rng.normal(0, 0.12, size=(4, 2))
    angle = np.arctan2(yy - center[0], xx - center[1])
    distance = np.hypot(yy - center[0], xx - center[1])

    def outline(scale: float, wobble: np.ndarray) -> np.ndarray:
        shape = sum(
            a * np.cos((k + 2) * angle) + b * np.sin((k + 2) * angle) for k, (a, b) in enumerate(harmonics + wobble)
        )
        return distance <= radius * scale * (1.0 + shape)

    truth = outline(1.0, np.zeros_like(harmonics))
    masks = np.stack(
        [outline(rng.normal(1.0, 0.1), rng.normal(0, 0.04, size=harmonics.shape)) for _ in range(annotators)]
    )
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), sigma=size / 16)
    texture /= np.abs(texture).max() + 1e-8
    lesion = gaussian_filter(truth.astype(np.float64), sigma=1.5)
    image = 0.45 + 0.12 * texture + rng.uniform(0.2, 0.35) * lesion + rng.normal(0, 0.05, (size, size))
    gray = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return np.repeat(gray[..., None], channels, axis=-1), masks
