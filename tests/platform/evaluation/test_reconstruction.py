"""The autoencoder's reconstruction Dice on small and large lesions (what the WCE weight acts on)."""

import math
from platform.data.loader import PreparedSplit
from platform.evaluation.reconstruction import reconstruction_by_size

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.autoencoder import PixelMaskCodec


def _split(sizes: list[int], annotators: int = 3) -> PreparedSplit:
    """One square lesion of side s per slice (0: an empty slice), marked by every annotator."""
    masks = np.zeros((len(sizes), annotators, 32, 32), np.uint8)
    for i, side in enumerate(sizes):
        masks[i, :, 4 : 4 + side, 4 : 4 + side] = 1
    return PreparedSplit(np.zeros((len(sizes), 1, 32, 32), np.float32), masks)


class CoarseCodec(nn.Module):
    """Keeps only what survives 8× average pooling: lesions smaller than a cell vanish."""

    def encode(self, masks):
        pooled = F.avg_pool2d(masks.float(), 8)
        return pooled, torch.zeros_like(pooled)

    def decode(self, latents):
        return torch.logit(F.interpolate(latents, scale_factor=8).clamp(1e-4, 1 - 1e-4))


def test_a_perfect_codec_scores_one_on_both_sizes():
    values = reconstruction_by_size(PixelMaskCodec(), _split([0, 2, 3, 12, 16]))
    assert values == {"ae_dice_small": 1.0, "ae_dice_large": 1.0}


def test_a_coarse_codec_loses_the_small_lesions_only():
    # sides 2 and 3 fall below the median area (side 16's): lost; sides 16, 24, 28 are kept
    values = reconstruction_by_size(CoarseCodec(), _split([2, 3, 16, 24, 28]), batch_size=2)
    assert values["ae_dice_small"] == 0.0
    assert values["ae_dice_large"] > 0.6  # the codec rounds edges to 8-px cells: not exact


def test_no_lesion_gives_nan():
    values = reconstruction_by_size(PixelMaskCodec(), _split([0, 0]))
    assert math.isnan(values["ae_dice_small"]) and math.isnan(values["ae_dice_large"])
