"""The training contract between a model and the loop that trains it: an ordered list of stages.

Each model declares its stages (`model.stages(losses)`); the loop walks the list without knowing
the model's kind. A new stage (a supervised condition encoder, say) is one more entry here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from models.losses import SegmentationLoss

# The UNet baseline's only stage and the latent model's prior stage: under one seed they draw the
# same batches (and start from the same weights), so latent − UNet compares models, not seeds.
# 0, the UNet's position, keeps its batches as they were. The latent model's autoencoder, also
# first, draws the same batches: harmless, since it trains other weights on the masks alone.
SEGMENTER_STREAM = 0

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images B×C×H×W, masks B×1×H×W) → scalar


@dataclass(frozen=True)
class StageLosses:
    """The loss terms stages may use: the mask loss (WCE + Dice) and the VAE's KL weight."""

    segmentation: SegmentationLoss  # (logits, masks) → scalar; .per_image → B
    kl_weight: float = 1e-6


@dataclass(frozen=True)
class Stage:
    """One optimisation stage.

    name: how checkpoints, curves and rows call it. part: which `train.stage` selection runs it
    ("autoencoder" or "diffusion"; `all` runs every stage). budget: the TrainConfig step keys whose
    sum is its step count. parameters: what the optimiser updates. frozen: modules held fixed (and
    in eval mode) while it trains. owns: the state-dict key prefixes whose values this stage
    produces (what a finished stage stores for reuse by other runs). requires: stages that must be
    finished first. after_step: runs after every optimiser step (e.g. EMA). after_stage: given up
    to 512 training images N×C×H×W and all their annotations N×A×H×W, learns values once at the
    end (the latent scale, the prior's threshold) into buffers the stage owns and returns them.
    fits_on: "train", or "held_out" to fit after_stage on the caller's held-out split when it gives
    one (a threshold chosen on the images a network was just fitted to is biased by that fit).
    stream: the key of its random streams (batches, augmentation, crops) under the run's seed;
    None: its position among the run's stages. Stages that train the same network for the same
    job share SEGMENTER_STREAM (see platform/build.py)."""

    name: str
    part: str
    budget: tuple[str, ...]
    parameters: Callable[[], Iterable[nn.Parameter]]
    loss: Loss
    owns: tuple[str, ...]
    frozen: tuple[nn.Module, ...] = ()
    requires: tuple[str, ...] = ()
    after_step: Callable[[], None] | None = None
    after_stage: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None = None
    fits_on: str = "train"
    stream: int | None = None

    def freeze(self) -> None:
        for module in self.frozen:
            module.requires_grad_(False)
            module.eval()
