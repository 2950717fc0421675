"""The one factory: a typed `Config` → ready-built model parts. Every constructor call is here."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from platform.checkpoint import CHECKPOINT, load_checkpoint
from platform.config_types import Config
from platform.errors import UsageError

import torch
from torch import nn

from models.autoencoder import MaskAutoencoder, PixelMaskCodec
from models.denoiser import ConcatDenoiser, ImageDecoder, ImageEncoder
from models.diffusion import make_schedulers
from models.medseglatdiff import MedSegLatDiff
from models.unet import UNetSegmenter

# What each stage's result depends on besides the data, the seed, the optimiser settings and its
# step budget (`stage_inputs`): the model keys that shape the modules it trains and its loss.
# A key missing here would let a trial reuse a stage trained under a different value, so the
# diffusion stage (trained last, on everything) reads every model key except sampling-only ones.
SEGMENTATION_LOSS = ("model.dice_weight", "wce_weight")
STAGE_READS: dict[str, tuple[str, ...]] = {
    "autoencoder": (
        "model.latent_factor",
        "model.latent_channels",
        "model.ae_width",
        "model.ae_crop",
        "model.ae_crop_foreground",
        "model.kl_weight",
        "model.ae_sample_posterior",
        "model.norm_num_groups",
        *SEGMENTATION_LOSS,
    ),
    "image_autoencoder": (
        "model.latent_factor",
        "model.encoder_channels",
        "model.cond_channels",
        "model.norm_num_groups",
    ),
    # the prior stage fits the start spread around a configured start threshold
    "prior": (
        "model.prior_channels",
        "model.prior_threshold",
        "model.segmenter_crop",
        "model.segmenter_ema_decay",
        *SEGMENTATION_LOSS,
    ),
    "segmenter": ("model.encoder_channels", "model.segmenter_crop", "model.segmenter_ema_decay", *SEGMENTATION_LOSS),
}
# Used when sampling, never in training
SAMPLING_ONLY = (
    "model.guidance_scale",
    "model.prior_strength",
    "model.prior_threshold",
    "model.prior_threshold_spread",
    "model.threshold_spread",
    "model.tta",
    "model.binary_samples",
    "model.majority_at_threshold",
)
SHARED_TRAIN_KEYS = ("seed", "lr", "lr_schedule", "batch_size", "foreground_share", "augment")


def stage_inputs(config: Config, stage_name: str, budget: tuple[str, ...], wce_weight: float) -> dict[str, object]:
    """Every configuration value one stage's trained result depends on (see STAGE_READS)."""
    model = {f"model.{k}": v for k, v in asdict(config.model).items()}
    model["model.guidance"] = config.model.guidance  # `conditioning` is only its shorthand
    model.pop("model.conditioning")
    values: dict[str, object] = {**model, "wce_weight": wce_weight}
    sampling_only: tuple[str, ...] = SAMPLING_ONLY
    if config.model.truncate_timesteps:  # prior_strength then bounds the diffusion's training timesteps
        sampling_only = tuple(k for k in SAMPLING_ONLY if k != "model.prior_strength")
    reads = STAGE_READS.get(stage_name, tuple(k for k in values if k not in sampling_only))
    return {
        "model.kind": config.model.kind,
        **{key: values[key] for key in reads},
        **{f"data.{k}": v for k, v in asdict(config.data).items() if k != "root"},
        **{f"train.{k}": getattr(config.train, k) for k in (*SHARED_TRAIN_KEYS, *budget)},
    }


def build_model(config: Config, latent_scale: float = 1.0) -> nn.Module:
    """MedSegLatDiff, the pixel-space diffusion baseline or the UNet baseline, per `model.kind`.

    Each part is initialised from its own seed (train.seed and the part's position), so a part's
    initial weights do not depend on the sizes of the others: a stage reused from another trial
    is the stage this trial would have trained. The latent model's prior takes the UNet
    baseline's seed (part 0), and its stage the UNet's batches (SEGMENTER_STREAM): under one
    seed both start from the same weights, so a paired latent − UNet difference measures the
    models rather than two draws of initial weights and batch order."""
    m, d = config.model, config.data

    def seeded(part: int) -> None:
        torch.manual_seed(config.train.seed * 100 + part)

    seeded(0)
    if m.kind == "unet":
        return UNetSegmenter(
            d.channels,
            m.encoder_channels,
            m.threshold_spread,
            m.tta,
            m.segmenter_crop,
            m.segmenter_ema_decay,
            majority_at_threshold=m.majority_at_threshold,
        )
    codec: nn.Module
    if m.kind == "medseglatdiff":
        codec = MaskAutoencoder(m.ae_channels, m.latent_channels, m.norm_num_groups, m.ae_sample_posterior)
    else:
        codec = PixelMaskCodec()
    seeded(1)
    encoder = ImageEncoder(d.channels, m.encoder_channels, m.cond_channels, codec.factor, m.norm_num_groups)
    seeded(0)
    prior = None
    if m.prior:
        prior = UNetSegmenter(
            d.channels, m.prior_channels, train_crop=m.segmenter_crop, weight_average=m.segmenter_ema_decay
        )
    seeded(3)
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
    seeded(4)
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
        truncate_timesteps=m.truncate_timesteps,
        ae_crop=m.ae_crop,
        ae_crop_foreground=m.ae_crop_foreground,
        prior_threshold=m.prior_threshold,
        prior_threshold_spread=m.prior_threshold_spread,
        prior_start_share=m.prior_start_share,
        prior_tta=m.tta,
        binary_samples=m.binary_samples,
        majority_at_threshold=m.majority_at_threshold,
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
