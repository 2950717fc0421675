"""The deterministic baseline: a MONAI UNet trained with the same WCE + Dice loss."""

from __future__ import annotations

import torch
from monai.networks.nets import UNet
from torch import nn

from models.averaging import moving_average
from models.crops import paired_crops
from models.ensemble import Ensemble
from models.losses import SegmentationLoss
from models.stages import SEGMENTER_STREAM, Stage, StageLosses
from models.thresholds import spread_thresholds
from models.tta import dihedral_mean


class UNetSegmenter(nn.Module):
    """images B×C×H×W → mask logits B×1×H×W.

    threshold_spread: 0 makes its 'ensemble' repeat the one prediction. s > 0 makes sample k its map
    with the logits shifted by −logit(t_k), t_k = spread_thresholds(0.5, s, K): sample k's mask is
    the map thresholded at t_k, so the samples are nested masks that differ where the map is unsure.
    The same rule spreads the latent model's start masks; it lets a study ask how much of that
    model's spread (GED, calibration) a plain segmenter's map already gives.
    tta: sampling averages the map over the 8 flips and 90° rotations (models/tta.py), as nnU-Net
    mirrors at inference.
    train_crop: side of the random image-mask windows it trains on (0: whole images), placed on
    foreground when the mask has some (models/crops.py); it still predicts on whole images.
    weight_average: the decay of an exponential moving average of the weights, kept while its stage
    trains and adopted as the network's weights when the stage ends (0: the last step's weights).
    majority_at_threshold: with threshold_spread, place the thresholds so that the samples' mean
    mask is the map's mask at 0.5, as without a spread (models/thresholds.py)."""

    def __init__(
        self,
        in_channels: int,
        channels: list[int],
        threshold_spread: float = 0.0,
        tta: bool = False,
        train_crop: int = 0,
        weight_average: float = 0.0,
        majority_at_threshold: bool = False,
    ) -> None:
        super().__init__()
        self.threshold_spread = threshold_spread
        self.majority_at_threshold = majority_at_threshold
        self.tta = tta
        self.train_crop = train_crop
        self.unet = UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=1,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=1,
        )
        self.averaged = moving_average(self.unet, weight_average) if weight_average > 0 else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.unet(images)

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, loss: SegmentationLoss) -> torch.Tensor:
        """`loss` on this network's logits for a batch, on windows of train_crop px when it is set."""
        images, masks = paired_crops(images, masks, self.train_crop)
        return loss(self(images), masks)

    def trained_parameters(self) -> list[nn.Parameter]:
        """What the optimiser updates: the network, not its moving average."""
        return list(self.unet.parameters())

    def update_average(self) -> None:
        if self.averaged is not None:
            self.averaged.update_parameters(self.unet)

    def adopt_average(self) -> None:
        """Make the moving average the network's weights (the end of the stage that trained it)."""
        if self.averaged is not None:
            self.unet.load_state_dict(self.averaged.module.state_dict())

    def stages(self, losses: StageLosses) -> list[Stage]:
        """One stage, with the step budget of the latent model's two stages together."""

        def adopt(images: torch.Tensor, annotations: torch.Tensor) -> dict[str, float]:
            self.adopt_average()
            return {}

        averaging = self.averaged is not None
        return [
            Stage(
                "segmenter",
                "diffusion",
                ("ae_steps", "diffusion_steps"),
                self.trained_parameters,
                lambda images, masks: self.training_loss(images, masks, losses.segmentation),
                owns=("",),
                stream=SEGMENTER_STREAM,
                after_step=self.update_average if averaging else None,
                after_stage=adopt if averaging else None,
            )
        ]

    @torch.no_grad()
    def probability_map(self, images: torch.Tensor, tta: bool | None = None) -> torch.Tensor:
        """The foreground map B×1×H×W that sampling thresholds: averaged over the views with tta
        (None: this segmenter's own setting; the latent model passes its prior's)."""
        averaged = self.tta if tta is None else tta
        if averaged:
            return dihedral_mean(lambda views: torch.sigmoid(self(views)), images)
        return torch.sigmoid(self(images))

    @torch.no_grad()
    def sample(
        self,
        images: torch.Tensor,
        samples: int,
        steps: int = 0,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
    ) -> Ensemble:
        if self.tta:
            probs = self.probability_map(images)
            logits = torch.logit(probs.clamp(1e-7, 1 - 1e-7))
        else:
            logits = self(images)
            probs = torch.sigmoid(logits)
        if self.threshold_spread == 0:
            return Ensemble(probs.unsqueeze(0).expand(samples, *probs.shape))
        # a threshold above 1 is an empty sample: logit(1) = ∞ shifts every logit to −∞
        thresholds = spread_thresholds(0.5, self.threshold_spread, samples, self.majority_at_threshold)
        shifts = torch.logit(thresholds.clamp(max=1.0)).to(logits.device)
        return Ensemble(torch.sigmoid(logits[None] - shifts.view(-1, 1, 1, 1, 1)))
