"""The deterministic baseline: a MONAI UNet trained with the same WCE + Dice loss."""

from __future__ import annotations

import torch
from monai.networks.nets import UNet
from torch import nn

from models.ensemble import Ensemble
from models.stages import Stage, StageLosses


class UNetSegmenter(nn.Module):
    """images B×C×H×W → mask logits B×1×H×W; its 'ensemble' repeats the one prediction."""

    def __init__(self, in_channels: int, channels: list[int]) -> None:
        super().__init__()
        self.unet = UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=1,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=1,
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.unet(images)

    def stages(self, losses: StageLosses) -> list[Stage]:
        """One stage, with the step budget of the latent model's two stages together."""
        return [
            Stage(
                "segmenter",
                "diffusion",
                ("ae_steps", "diffusion_steps"),
                self.parameters,
                lambda images, masks: losses.segmentation(self(images), masks),
                owns=("",),
            )
        ]

    @torch.no_grad()
    def sample(
        self,
        images: torch.Tensor,
        samples: int,
        steps: int = 0,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
    ) -> Ensemble:
        probs = torch.sigmoid(self(images))
        return Ensemble(probs.unsqueeze(0).expand(samples, *probs.shape))
