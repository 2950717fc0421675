"""What the WCE weight acts on: how well the mask autoencoder reconstructs small and large lesions.

The mask path is trained with weighted cross-entropy; a larger foreground weight should help the
autoencoder keep small nodules that a 4× smaller latent can lose. Measured on the consensus
masks of the non-empty validation slices, split at their median foreground area."""

from __future__ import annotations

from platform.data.loader import PreparedSplit
from platform.metrics import majority_vote

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def reconstruction_by_size(
    codec: nn.Module, split: PreparedSplit, limit: int = 256, batch_size: int = 32
) -> dict[str, float]:
    """Mean Dice of decode(encode(mask)) (posterior mean, threshold 0.5) vs the consensus mask, on
    the first `limit` non-empty slices: below (`ae_dice_small`) and at or above (`ae_dice_large`)
    their median foreground area. NaN when the split has no non-empty consensus."""
    consensus = majority_vote(torch.from_numpy(np.asarray(split.masks))).float()  # N×1×H×W
    areas = consensus.flatten(1).sum(1)
    nonempty = torch.nonzero(areas > 0).flatten()[:limit]
    if len(nonempty) == 0:
        return {"ae_dice_small": float("nan"), "ae_dice_large": float("nan")}
    codec.eval()
    dices = []
    for start in range(0, len(nonempty), batch_size):
        masks = consensus[nonempty[start : start + batch_size]]
        mean, _ = codec.encode(masks)  # type: ignore[operator]
        predicted = (torch.sigmoid(codec.decode(mean)) >= 0.5).float()  # type: ignore[operator]
        overlap = (predicted * masks).flatten(1).sum(1)
        dices.append(2 * overlap / (predicted.flatten(1).sum(1) + masks.flatten(1).sum(1)))
    dice = torch.cat(dices)
    size = areas[nonempty]
    small = size < size.median()
    return {
        "ae_dice_small": float(dice[small].mean()) if small.any() else float("nan"),
        "ae_dice_large": float(dice[~small].mean()),
    }
