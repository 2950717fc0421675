"""Test-time augmentation: a segmentation map averaged over the eight flips and 90° rotations of the
image, the transforms training augments with (platform/data/augment.py), mapped back before averaging."""

from __future__ import annotations

from collections.abc import Callable

import torch


def dihedral_mean(probabilities: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """Mean of `probabilities` (images B×C×H×W → maps B×1×H×W) over the 8 dihedral views of square images."""
    total = torch.zeros(())
    for turns in range(4):
        for flipped in (False, True):
            view = torch.rot90(images, turns, (-2, -1))
            view = view.flip(-1) if flipped else view
            maps = probabilities(view)
            maps = maps.flip(-1) if flipped else maps
            total = total + torch.rot90(maps, -turns, (-2, -1))
    return total / 8
