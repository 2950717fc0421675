"""The one factory: a typed `Config` → ready-built model parts. Every constructor call is here."""

from __future__ import annotations

from pathlib import Path
from platform.checkpoint import CHECKPOINT, load_checkpoint
from platform.config_types import Config
from platform.errors import UsageError

from torch import nn

from models.autoencoder import MaskAutoencoder, PixelMaskCodec
from models.denoiser import ConcatDenoiser, ImageDecoder, ImageEncoder
from models.diffusion import make_schedulers
from models.medseglatdiff import MedSegLatDiff
from models.unet import UNetSegmenter


def build_model(config: Config, latent_scale: float = 1.0) -> nn.Module:
    """MedSegLatDiff, the pixel-space diffusion baseline or the UNet baseline, per `model.kind`."""
    m, d = config.model, config.data
    if m.kind == "unet":
        return UNetSegmenter(d.channels, m.encoder_channels)
    codec: nn.Module
    if m.kind == "medseglatdiff":
        codec = MaskAutoencoder(m.ae_channels, m.latent_channels, m.norm_num_groups)
    else:
        codec = PixelMaskCodec()
    encoder = ImageEncoder(d.channels, m.encoder_channels, m.cond_channels, codec.factor, m.norm_num_groups)
    prior = UNetSegmenter(d.channels, m.prior_channels) if m.prior else None
    denoiser = ConcatDenoiser(
        codec.latent_channels,
        m.cond_channels + (1 if prior is not None else 0),  # the prior's pooled probability map
        m.denoiser_channels,
        m.attention_levels,
        m.norm_num_groups,
    )
    train_scheduler, sample_scheduler = make_schedulers(m.train_timesteps, m.schedule, m.prediction)
    cfg = m.guidance
    image_decoder = None
    if m.image_encoder_init == "autoencoder":
        image_decoder = ImageDecoder(
            m.cond_channels, m.encoder_channels[-1], d.channels, codec.factor, m.norm_num_groups
        )
    return MedSegLatDiff(
        codec,
        encoder,
        denoiser,
        train_scheduler,
        sample_scheduler,
        latent_scale,
        p_uncond=m.p_uncond if cfg else 0.0,
        guidance_scale=m.effective_guidance_scale if cfg else None,
        ema_decay=m.ema_decay,
        image_decoder=image_decoder,
        prior=prior,
        prior_strength=m.prior_strength,
        x0_loss_weight=m.x0_loss_weight,
    )


def model_from_checkpoint(payload: dict, config: Config, path: Path) -> nn.Module:
    """Build the model `config` describes and load a checkpoint's weights; UsageError on mismatch."""
    model = build_model(config, payload["state"]["latent_scale"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise UsageError(f"{path}: checkpoint does not match this model config ({str(exc)[:200]})") from None
    return model


def load_trained(run_dir: Path, config: Config) -> tuple[nn.Module, dict]:
    """The model of a finished run folder (eval mode, CPU) and its saved run state."""
    path = run_dir / CHECKPOINT
    payload = load_checkpoint(path)
    return model_from_checkpoint(payload, config, path).eval(), payload["state"]
