"""A cheap validation signal during training, for pruning: Dice on a fixed few non-empty slices.

Pruning on the training loss stops nothing useful (a diffusion loss falls while the sampled masks
stay empty). This samples one mask per image, with few DDIM steps, on the first `images`
validation images whose majority vote is not empty — the same images at every call."""

from __future__ import annotations

from platform.data.loader import PreparedSplit
from platform.metrics import majority_vote

import numpy as np
import torch
from torch import nn


class QuickValidation:
    """`dice_nonempty` of one sampled mask per image on a fixed non-empty validation subset."""

    def __init__(self, split: PreparedSplit, images: int, steps: int, seed: int = 0) -> None:
        marked = np.flatnonzero(np.asarray(split.masks).reshape(len(split), split.masks.shape[1], -1).any(-1).any(-1))
        chosen = []
        for i in marked:
            consensus = majority_vote(torch.from_numpy(np.asarray(split.masks[i : i + 1])))
            if consensus.any():
                chosen.append(int(i))
            if len(chosen) == images:
                break
        self.indices = chosen
        self.images = torch.from_numpy(np.asarray(split.images[chosen])) if chosen else None
        self.consensus = majority_vote(torch.from_numpy(np.asarray(split.masks[chosen]))) if chosen else None
        self.steps, self.seed = steps, seed

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> float:
        """Mean Dice of the sampled masks against the consensus (NaN without non-empty slices)."""
        if self.images is None or self.consensus is None:
            return float("nan")
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(self.seed)
        ensemble = model.sample(self.images.to(device), 1, self.steps, generator)  # type: ignore[operator]
        model.train(was_training)
        predicted = ensemble.masks[0].float().cpu()
        target = self.consensus.float()
        overlap = (predicted * target).flatten(1).sum(1)
        total = predicted.flatten(1).sum(1) + target.flatten(1).sum(1)
        return float((2 * overlap / total.clamp_min(1e-9)).mean())
