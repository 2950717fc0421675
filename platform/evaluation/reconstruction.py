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
def round_trip(codec: nn.Module, masks: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Masks N×1×H×W through the codec: encoded (posterior mean), decoded, thresholded at 0.5."""
    decoded = [
        codec.decode(codec.encode(masks[i : i + batch_size])[0])  # type: ignore[operator]
        for i in range(0, len(masks), batch_size)
    ]
    return (torch.sigmoid(torch.cat(decoded)) >= 0.5).float()


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
    masks = consensus[nonempty]
    predicted = round_trip(codec, masks, batch_size)
    overlap = (predicted * masks).flatten(1).sum(1)
    dice = 2 * overlap / (predicted.flatten(1).sum(1) + masks.flatten(1).sum(1))
    size = areas[nonempty]
    small = size < size.median()
    return {
        "ae_dice_small": float(dice[small].mean()) if small.any() else float("nan"),
        "ae_dice_large": float(dice[~small].mean()),
    }
