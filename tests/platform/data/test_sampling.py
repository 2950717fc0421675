"""Foreground oversampling and augmentation of training batches."""

from platform.data.augment import augment
from platform.data.loader import PreparedSplit

import numpy as np
import pytest


def _split(marked: int, total: int = 40, annotators: int = 2) -> PreparedSplit:
    images = np.random.default_rng(0).normal(size=(total, 1, 8, 8)).astype(np.float32)
    masks = np.zeros((total, annotators, 8, 8), np.uint8)
    masks[:marked, 1, 2:4, 2:4] = 1  # only the second annotator marks, on the first `marked` images
    return PreparedSplit(images, masks)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_foreground_share_of_each_batch(share):
    split = _split(marked=4)
    rng = np.random.default_rng(7)
    for _ in range(20):
        _, masks = split.batch(rng, 16, foreground_share=share)
        with_foreground = int((masks.flatten(1).sum(1) > 0).sum())
        assert with_foreground >= int(np.ceil(share * 16))  # forced ones always carry a marking annotator
    first = _split(marked=4).batch(np.random.default_rng(3), 16, 0.5, augmented=True)
    again = _split(marked=4).batch(np.random.default_rng(3), 16, 0.5, augmented=True)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again, strict=True))  # seeded


def test_split_without_foreground_falls_back_to_uniform_draws():
    split = _split(marked=0)
    images, masks = split.batch(np.random.default_rng(0), 8, foreground_share=0.5)
    assert images.shape == (8, 1, 8, 8) and masks.sum() == 0


def test_augmentation_keeps_image_and_mask_aligned():
    image = np.zeros((1, 1, 8, 8), np.float32)
    mask = np.zeros((1, 1, 8, 8), np.float32)
    image[0, 0, 1, 2:6] = 5.0  # an asymmetric L shape, marked in both
    image[0, 0, 1:5, 5] = 5.0
    mask[0, 0] = image[0, 0] > 0
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(40):
        out_image, out_mask = augment(image, mask, rng)
        assert np.array_equal(out_image[0, 0] > 2.0, out_mask[0, 0] > 0)  # jitter ≤ 10 %: still above 2
        seen.add(out_mask.tobytes())
    assert len(seen) == 8  # the 8 distinct flips and rotations of an asymmetric shape all occur


def test_fitting_sample_spreads_over_the_whole_split_with_every_annotator():
    split = _split(marked=4, total=40)
    images, masks = split.fitting_sample(10)
    assert images.shape == (10, 1, 8, 8) and masks.shape == (10, 2, 8, 8) and masks.dtype == images.dtype
    assert np.array_equal(images[0].numpy(), split.images[0]) and np.array_equal(images[-1].numpy(), split.images[-1])
    assert masks[0, 1].sum() == 4 and masks[0, 0].sum() == 0  # both annotators of the first image
    assert split.fitting_sample(512)[0].shape[0] == 40  # a small split: all of it
