"""MedSegLatDiff: a frozen mask codec, an image encoder and a denoiser, trained and sampled together.

The same class is the pixel-space baseline when given `PixelMaskCodec`: only the codec differs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn
from torch.optim.swa_utils import AveragedModel

from models.denoiser import ConcatDenoiser, ImageEncoder
from models.diffusion import ddim_sample, diffusion_loss
from models.ensemble import Ensemble


class ConditionedDenoiser(nn.Module):
    """Image encoder + denoiser as one module, so EMA and checkpoints treat them together."""

    def __init__(self, image_encoder: ImageEncoder, denoiser: ConcatDenoiser) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.denoiser = denoiser


class MedSegLatDiff(nn.Module):
    """Latent diffusion segmentation with concatenation or classifier-free-guidance conditioning.

    codec: encode(masks B×1×H×W) → (mu, sigma) B×c×h×w; decode(latents) → logits B×1×H×W.
    latent_scale: multiplies codec latents to unit variance (see `latent_scale_factor`).
    guidance_scale: None for concatenation; a float s for CFG (p_uncond > 0 in training)."""

    def __init__(
        self,
        codec: nn.Module,
        image_encoder: ImageEncoder,
        denoiser: ConcatDenoiser,
        train_scheduler: DDPMScheduler,
        sample_scheduler: DDIMScheduler,
        latent_scale: float = 1.0,
        p_uncond: float = 0.0,
        guidance_scale: float | None = None,
        ema_decay: float = 0.999,
        image_decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.codec = codec
        self.image_decoder = image_decoder  # only to pre-train the image encoder as an autoencoder
        self.net = ConditionedDenoiser(image_encoder, denoiser)
        self.ema = AveragedModel(self.net, avg_fn=_ema_with_warmup(ema_decay), use_buffers=True)
        self.train_scheduler = train_scheduler
        self.sample_scheduler = sample_scheduler
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale)))
        self.p_uncond = p_uncond
        self.guidance_scale = guidance_scale

    def diffusion_loss(self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None):
        """DDPM loss for images B×C×H×W and one mask per image B×1×H×W; the codec is frozen.

        With CFG, each image's condition is zeroed with probability p_uncond."""
        with torch.no_grad():
            latents = self.codec.encode(masks)[0] * self.latent_scale
        condition = self.net.image_encoder(images)
        if self.p_uncond > 0:
            keep = torch.rand(images.shape[0], 1, 1, 1, generator=generator, device=images.device) >= self.p_uncond
            condition = condition * keep
        return diffusion_loss(self.net.denoiser, latents, condition, self.train_scheduler, generator)

    def image_reconstruction_loss(self, images: torch.Tensor) -> torch.Tensor:
        """MSE of the image autoencoder (image encoder → image decoder); needs `image_decoder`."""
        if self.image_decoder is None:
            raise RuntimeError("this model was built without an image decoder")
        return F.mse_loss(self.image_decoder(self.net.image_encoder(images)), images)

    def update_ema(self) -> None:
        self.ema.update_parameters(self.net)

    @torch.no_grad()
    def sample(
        self,
        images: torch.Tensor,
        samples: int,
        steps: int = 20,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
    ) -> Ensemble:
        """`samples` masks per image in one batched DDIM pass (N·B latents). images: B×C×H×W."""
        net = self.ema.module if use_ema else self.net
        condition = net.image_encoder(images).repeat(samples, 1, 1, 1)
        shape = (condition.shape[0], self.codec.latent_channels, *condition.shape[-2:])
        latents = ddim_sample(
            net.denoiser, condition, shape, self.sample_scheduler, steps, self.guidance_scale, generator
        )
        probs = torch.sigmoid(self.codec.decode(latents / self.latent_scale))
        return Ensemble(probs.reshape(samples, images.shape[0], *probs.shape[1:]))


def _ema_with_warmup(decay: float):
    """EMA whose decay ramps up as (1 + n)/(10 + n): short CPU runs still sample from trained weights."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, float((1 + num_averaged) / (10 + num_averaged)))
        return d * averaged + (1 - d) * current

    return average
