"""Mask codecs: a KL-regularised VAE over masks (MONAI AutoencoderKL), and the identity for pixel space."""

from __future__ import annotations

import torch
from monai.networks.nets import AutoencoderKL
from torch import nn

from models.crops import random_crops
from models.stages import StageLosses


class MaskAutoencoder(nn.Module):
    """VAE over binary masks: B×1×H×W in {0,1} → latents B×c×H/f×W/f → mask logits B×1×H×W.

    f = 2**(len(channels) − 1). No attention: masks are simple shapes and CPU time is scarce.

    sample_posterior: the decoder trains on a reparameterised sample of the posterior (a VAE, the
    paper's codec); False: on the posterior mean, which sampling encodes anyway (a plain
    autoencoder). On LIDC neither is reliable at 720 steps: in five seeds each, one codec erodes
    small masks (annotator masks under 50 px: Dice 0.89 with 85 % of their area kept with samples,
    0.87 with 81 % on the mean); the VAE at 1440 steps (the LIDC budget) keeps them in eight
    seeds of eight (0.97–0.99, at least 96 % of their area; BENCHMARKS.md)."""

    def __init__(
        self, channels: list[int], latent_channels: int, norm_num_groups: int = 8, sample_posterior: bool = True
    ) -> None:
        super().__init__()
        self.sample_posterior = sample_posterior
        self.vae = AutoencoderKL(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=tuple(channels),
            latent_channels=latent_channels,
            num_res_blocks=1,
            attention_levels=(False,) * len(channels),
            norm_num_groups=norm_num_groups,
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        )
        self.latent_channels = latent_channels
        self.factor = 2 ** (len(channels) - 1)

    def encode(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation, each B×c×H/f×W/f."""
        return self.vae.encode(masks.float() * 2 - 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Mask logits B×1×H×W."""
        return self.vae.decode(latents)

    def forward(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, mu, sigma), decoded from a reparameterised sample or, without sample_posterior, mu."""
        mu, sigma = self.encode(masks)
        z = mu + sigma * torch.randn_like(sigma) if self.sample_posterior else mu
        return self.decode(z), mu, sigma


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma²) ‖ N(0, 1)) summed over latent elements, averaged over the batch."""
    kl = 0.5 * (mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-10) - 1)
    return kl.flatten(1).sum(1).mean()


def autoencoder_loss(
    codec: nn.Module, masks: torch.Tensor, losses: StageLosses, crop: int = 0, crop_on_foreground: bool = False
) -> torch.Tensor:
    """Mask reconstruction loss (WCE + Dice on the decoded logits) + β·KL, for masks B×1×H×W.

    crop > 0: on one random crop per mask. The codec is convolutional, so it learns the same
    shapes from a crop at a fraction of the cost of the whole mask (see random_crops)."""
    masks = random_crops(masks, crop, crop_on_foreground)
    logits, mu, sigma = codec(masks)
    return losses.segmentation(logits, masks) + losses.kl_weight * kl_divergence(mu, sigma)


class PixelMaskCodec(nn.Module):
    """Identity codec for pixel-space diffusion: masks live in [−1, 1] at full resolution."""

    latent_channels = 1
    factor = 1

    def encode(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = masks.float() * 2 - 1
        return x, torch.zeros_like(x)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Logits whose sigmoid is the pixel value mapped from [−1, 1] to [0, 1]."""
        return torch.logit(((latents + 1) / 2).clamp(1e-4, 1 - 1e-4))


@torch.no_grad()
def latent_scale_factor(
    autoencoder: MaskAutoencoder | PixelMaskCodec, masks: torch.Tensor, batch_size: int = 64
) -> float:
    """1 / std of the posterior means of `masks` (N×1×H×W): scales latents to unit variance.

    Computed once from the trained autoencoder and stored in the checkpoint (never updated
    silently during training)."""
    means = [autoencoder.encode(masks[i : i + batch_size])[0] for i in range(0, len(masks), batch_size)]
    std = float(torch.cat(means).std())
    return 1.0 / max(std, 1e-6)
