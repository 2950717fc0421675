"""MedSegLatDiff: a frozen mask codec, an image encoder and a denoiser, trained and sampled together.

The same class is the pixel-space baseline when given `PixelMaskCodec`: only the codec differs."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler
from torch import nn

from models.autoencoder import MaskAutoencoder, PixelMaskCodec, autoencoder_loss, latent_scale_factor
from models.averaging import moving_average
from models.denoiser import ConcatDenoiser, ImageEncoder
from models.diffusion import ddim_sample, denoising_step, diffusion_loss
from models.ensemble import Ensemble
from models.stages import SEGMENTER_STREAM, Stage, StageLosses
from models.thresholds import best_spread, best_threshold, spread_thresholds
from models.unet import UNetSegmenter


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
    guidance_scale: None for concatenation; a float s for CFG (p_uncond > 0 in training).
    prior: an optional UNetSegmenter (images → mask logits B×1×H×W), trained in its own
    stage and frozen after it (HiDiff-style); its probability map, average-pooled to the latent
    size, is one more condition channel, and with prior_strength s < 1 sampling starts from the
    latent of its mask noised to s·T instead of from pure noise.
    x0_loss_weight: weight of a mask-space loss (WCE + Dice) on the decoded x̂0, each example
    weighted by ᾱ_t (large t gives x̂0 that is mostly amplified noise).
    truncate_timesteps: with a prior and prior_strength s < 1, train only on t < s·T, the
    timesteps sampling visits, instead of spreading the budget over all T.
    ae_crop: side of the random mask crops the autoencoder stage trains on (0: whole masks);
    ae_crop_foreground: each crop of a mask with foreground holds some of it.
    prior_threshold: probability at which the prior's map becomes the start mask; None: the one
    fitted at the end of the prior stage (`fitted_prior_threshold`, models/thresholds.py) on
    held-out images, or training images when the loop has none: a prior trained briefly is
    under-confident on small lesions, so 0.5 can drop them, while on large structures 0.3 marks
    too much.
    prior_threshold_spread: s > 0 gives each of K samples its own start mask, thresholded at
    start_threshold·e^(s·q_k) with q_k evenly spaced in [-1, 1] (models/thresholds.py; above 1 the
    start mask is empty): the samples then span what the prior is unsure of (a faint nodule is in
    some samples, not all), where one start mask makes them near copies; the middle sample keeps
    start_threshold. None: the s whose nested prior masks best match the held-out annotators by GED,
    fitted at the end of the prior stage (`fitted_prior_threshold_spread`) around prior_threshold,
    or around the fitted threshold when prior_threshold is None. A prior_threshold changed after
    training keeps the spread fitted around the old one.
    prior_tta: sampling averages the prior's map over the 8 flips and 90° rotations of the image
    (models/tta.py) before it conditions the denoiser and makes the start masks, and uses the
    threshold and spread fitted on that averaged map (the prior stage fits both maps: the averaged
    one is smoother and needs a smaller spread); training uses the plain map. Without a prior
    there is no map to average.
    prior_start_share: in training, the share of examples whose x_t is noised from the latent of
    the prior's mask (at the fitted threshold·e^(u), u uniform in [-1, 1]) instead of from the
    annotation's latent, the target still leading to the annotation: the denoiser learns to correct
    the prior's mask, which is where sampling starts, rather than to return it unchanged.
    binary_samples: each decoded sample is its mask (probability ≥ 0.5), so the confidence map is
    the share of samples that mark a pixel: the mean of the sampled masks. The decoder's soft
    output blurs a small nodule's rim: averaged as is, a pixel that half the samples mark can fall
    below 0.5 and drop out of the ensemble-mean mask. With it every sample's per-pixel entropy is 0,
    so the uncertainty decomposition reports all of it as epistemic (mutual information).
    majority_at_threshold: place the start thresholds so that the K/2-th lowest is start_threshold
    (models/thresholds.py): the start masks' majority is then the prior's mask at start_threshold,
    not at the lower threshold a symmetric set of an even count puts there. The spread is still
    fitted on the symmetric set, so a run samples with or without this from the same fit."""

    def __init__(
        self,
        codec: MaskAutoencoder | PixelMaskCodec,
        image_encoder: ImageEncoder,
        denoiser: ConcatDenoiser,
        train_scheduler: DDPMScheduler,
        sample_scheduler: DDIMScheduler,
        latent_scale: float = 1.0,
        p_uncond: float = 0.0,
        guidance_scale: float | None = None,
        ema_decay: float = 0.999,
        image_decoder: nn.Module | None = None,
        prior: UNetSegmenter | None = None,
        prior_strength: float = 1.0,
        x0_loss_weight: float = 0.0,
        truncate_timesteps: bool = False,
        ae_crop: int = 0,
        ae_crop_foreground: bool = False,
        prior_threshold: float | None = None,
        prior_threshold_spread: float | None = 0.0,
        prior_start_share: float = 0.0,
        prior_tta: bool = False,
        binary_samples: bool = False,
        majority_at_threshold: bool = False,
    ) -> None:
        super().__init__()
        self.codec: MaskAutoencoder | PixelMaskCodec = codec
        self.image_decoder = image_decoder  # only to pre-train the image encoder as an autoencoder
        self.net = ConditionedDenoiser(image_encoder, denoiser)
        self.ema = moving_average(self.net, ema_decay)
        self.train_scheduler = train_scheduler
        self.sample_scheduler = sample_scheduler
        self.latent_scale: torch.Tensor
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale)))
        self.fitted_prior_threshold: torch.Tensor
        self.register_buffer("fitted_prior_threshold", torch.tensor(0.5))
        self.fitted_prior_threshold_spread: torch.Tensor
        self.register_buffer("fitted_prior_threshold_spread", torch.tensor(0.5))
        # the same two fitted on the prior's map averaged over flips and rotations (prior_tta)
        self.fitted_prior_threshold_tta: torch.Tensor
        self.register_buffer("fitted_prior_threshold_tta", torch.tensor(0.5))
        self.fitted_prior_threshold_spread_tta: torch.Tensor
        self.register_buffer("fitted_prior_threshold_spread_tta", torch.tensor(0.5))
        self.register_load_state_dict_pre_hook(_fits_of_older_checkpoints)
        self.p_uncond = p_uncond
        self.guidance_scale = guidance_scale
        self.prior = prior
        self.prior_strength = prior_strength
        self.x0_loss_weight = x0_loss_weight
        self.ae_crop = ae_crop
        self.ae_crop_foreground = ae_crop_foreground
        self.prior_threshold = prior_threshold
        self.prior_threshold_spread = prior_threshold_spread
        self.prior_start_share = prior_start_share if prior is not None else 0.0
        self.prior_tta = prior_tta
        self.binary_samples = binary_samples
        self.majority_at_threshold = majority_at_threshold
        self.max_timestep: int | None = None
        if truncate_timesteps and prior is not None and prior_strength < 1.0:
            self.max_timestep = max(1, int(prior_strength * train_scheduler.num_train_timesteps))

    def diffusion_loss(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        generator: torch.Generator | None = None,
        mask_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """DDPM loss for images B×C×H×W and one mask per image B×1×H×W; codec and prior are frozen.

        With CFG, each image's condition is zeroed with probability p_uncond. With a prior and
        prior_start_share > 0, that share of x_t is noised from the prior's masks. With x0_loss_weight
        > 0 and `mask_loss` (per-image losses B from logits and masks), adds
        x0_loss_weight · mean_b(ᾱ_b · mask_loss(decode(x̂0_b), mask_b))."""
        with torch.no_grad():
            latents = self.codec.encode(masks)[0] * self.latent_scale
        probs = self._prior_probs(images) if self.prior is not None else None
        condition = self._net_condition(self.net, images, probs)
        if self.p_uncond > 0:
            keep = torch.rand(images.shape[0], 1, 1, 1, generator=generator, device=images.device) >= self.p_uncond
            condition = condition * keep
        origin = self._training_origins(latents, probs, generator) if probs is not None else None
        if self.x0_loss_weight <= 0 or mask_loss is None:
            return diffusion_loss(
                self.net.denoiser, latents, condition, self.train_scheduler, generator, self.max_timestep, origin
            )
        mse, x0_hat, alpha_bar = denoising_step(
            self.net.denoiser, latents, condition, self.train_scheduler, generator, self.max_timestep, origin
        )
        per_image = mask_loss(self.codec.decode(x0_hat / self.latent_scale), masks)
        return mse + self.x0_loss_weight * (alpha_bar * per_image).mean()

    @torch.no_grad()
    def _training_origins(
        self, latents: torch.Tensor, probs: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        """What each training example is noised from (see prior_start_share): the annotation's
        latent, or for a drawn share the latent of the prior's mask at a drawn threshold. None: all
        annotations. The fitted threshold, never the sampling-time override, keeps training
        independent of sampling keys; e^(±1) is a fixed span, whatever spread sampling fitted."""
        if self.prior_start_share <= 0:
            return None
        count = latents.shape[0]
        chosen = torch.rand(count, generator=generator, device=latents.device) < self.prior_start_share
        u = torch.rand(count, generator=generator, device=latents.device) * 2 - 1
        thresholds = (float(self.fitted_prior_threshold) * torch.exp(u)).clamp(0.01, 0.99)
        if not bool(chosen.any()):
            return None
        masks = (probs[chosen] >= thresholds[chosen].view(-1, 1, 1, 1)).float()
        origins = latents.clone()
        origins[chosen] = self.codec.encode(masks)[0] * self.latent_scale
        return origins

    def _net_condition(
        self, net: ConditionedDenoiser, images: torch.Tensor, prior_probs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Image features B×k×h×w, and the prior's probability map pooled to h×w when there is a prior.

        `prior_probs` (B×1×H×W): the prior's output when the caller already has it."""
        features = net.image_encoder(images)
        if self.prior is None:
            return features
        if prior_probs is None:
            prior_probs = self._prior_probs(images)
        return torch.cat([features, F.adaptive_avg_pool2d(prior_probs, features.shape[-2:])], dim=1)

    @torch.no_grad()
    def _prior_probs(self, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
        if self.prior is None:
            raise RuntimeError("this model was built without a prior")
        return self.prior.probability_map(images, tta)

    @property
    def start_threshold(self) -> float:
        """The prior probability that makes the start mask: prior_threshold, else the one fitted on
        the map sampling uses (averaged over views with prior_tta)."""
        buffer = self.fitted_prior_threshold_tta if self.prior_tta else self.fitted_prior_threshold
        fitted = round(float(buffer), 6)  # a float32 buffer: 0.85 reads 0.8500000238
        return self.prior_threshold if self.prior_threshold is not None else fitted

    @property
    def start_spread(self) -> float:
        """The start masks' spread: prior_threshold_spread, else the one fitted on the map sampling uses."""
        buffer = self.fitted_prior_threshold_spread_tta if self.prior_tta else self.fitted_prior_threshold_spread
        fitted = round(float(buffer), 6)
        return self.prior_threshold_spread if self.prior_threshold_spread is not None else fitted

    def start_thresholds(self, samples: int) -> torch.Tensor:
        """The start-mask threshold of each of `samples` samples (see prior_threshold_spread)."""
        return spread_thresholds(self.start_threshold, self.start_spread, samples, self.majority_at_threshold)

    def prior_latents(
        self, images: torch.Tensor, prior_probs: torch.Tensor | None = None, samples: int = 1
    ) -> torch.Tensor:
        """Scaled latents (samples·B)×c×h×w of the prior's masks, sample-major; needs a prior.

        Sample k's mask is where the prior's probability reaches start_thresholds(samples)[k]."""
        probs = self._prior_probs(images) if prior_probs is None else prior_probs
        thresholds = self.start_thresholds(samples).to(probs.device).view(-1, 1, 1, 1, 1)
        masks = (probs[None] >= thresholds).flatten(0, 1)
        # Encode each distinct mask once: neighbouring thresholds often give the same mask (every
        # one is empty on a slice without a nodule), and encoding all K·B masks cost a quarter of
        # sampling at 10 DDIM steps. The encoder treats images independently, so this is exact.
        distinct, index = torch.unique(masks.flatten(1).to(torch.uint8), dim=0, return_inverse=True)
        latents = self.codec.encode(distinct.view(-1, *masks.shape[1:]).float())[0]
        return latents[index] * self.latent_scale

    def image_reconstruction_loss(self, images: torch.Tensor) -> torch.Tensor:
        """MSE of the image autoencoder (image encoder → image decoder); needs `image_decoder`."""
        if self.image_decoder is None:
            raise RuntimeError("this model was built without an image decoder")
        return F.mse_loss(self.image_decoder(self.net.image_encoder(images)), images)

    def update_ema(self) -> None:
        self.ema.update_parameters(self.net)

    def stages(self, losses: StageLosses) -> list[Stage]:
        """Mask autoencoder (unless the codec is the pixel identity), optionally the image encoder as
        an image autoencoder, then the latent diffusion with the codec frozen (see models/stages.py)."""
        stages = []
        trains_codec = any(True for _ in self.codec.parameters())
        if trains_codec:
            stages.append(
                Stage(
                    "autoencoder",
                    "autoencoder",
                    ("ae_steps",),
                    self.codec.parameters,
                    lambda images, masks: autoencoder_loss(
                        self.codec, masks, losses, self.ae_crop, self.ae_crop_foreground
                    ),
                    owns=("codec.", "latent_scale"),
                    after_stage=self._fit_latent_scale,
                )
            )
        if self.image_decoder is not None:
            decoder = self.image_decoder
            stages.append(
                Stage(
                    "image_autoencoder",
                    "diffusion",
                    ("image_ae_steps",),
                    lambda: [*self.net.image_encoder.parameters(), *decoder.parameters()],
                    lambda images, masks: self.image_reconstruction_loss(images),
                    owns=("net.image_encoder.", "image_decoder."),
                )
            )
        if self.prior is not None:
            prior = self.prior
            stages.append(
                Stage(
                    "prior",
                    "diffusion",
                    ("prior_steps",),
                    prior.trained_parameters,
                    lambda images, masks: prior.training_loss(images, masks, losses.segmentation),
                    owns=("prior.", "fitted_prior_threshold"),
                    after_step=prior.update_average if prior.averaged is not None else None,
                    after_stage=self._fit_prior_threshold,
                    fits_on="held_out",
                    stream=SEGMENTER_STREAM,  # the UNet baseline's batches under the same seed
                )
            )
        frozen = (self.codec,) if self.prior is None else (self.codec, self.prior)
        stages.append(
            Stage(
                "diffusion",
                "diffusion",
                ("diffusion_steps",),
                self.net.parameters,
                lambda images, masks: self.diffusion_loss(images, masks, mask_loss=losses.segmentation.per_image),
                owns=("net.", "ema."),
                frozen=frozen,
                requires=tuple(s.name for s in stages),
                after_step=self.update_ema,
            )
        )
        return stages

    def _fit_latent_scale(self, images: torch.Tensor, annotations: torch.Tensor) -> dict[str, float]:
        # One annotator per image, in turn: all of them would cost 4x (33 s on LIDC) for the same std
        index = torch.arange(len(annotations))
        masks = annotations[index, index % annotations.shape[1]][:, None]
        scale = latent_scale_factor(self.codec.eval(), masks)
        self.latent_scale.fill_(scale)
        return {"latent_scale": scale}

    @torch.no_grad()
    def _fit_prior_threshold(self, images: torch.Tensor, annotations: torch.Tensor) -> dict[str, float]:
        if self.prior is None:
            raise RuntimeError("this model was built without a prior")
        self.prior.adopt_average()  # the thresholds are fitted on the map sampling will use
        self.prior.eval()
        fitted: dict[str, float] = {}
        for tta, suffix in ((False, ""), (True, "_tta")):
            probs = torch.cat([self._prior_probs(images[i : i + 64], tta) for i in range(0, len(images), 64)])
            threshold = best_threshold(probs, annotations)
            # the spread around the threshold sampling will start at: a configured one, else the fitted one
            center = self.prior_threshold if self.prior_threshold is not None else threshold
            spread = best_spread(probs, annotations, center)
            getattr(self, "fitted_prior_threshold" + suffix).fill_(threshold)
            getattr(self, "fitted_prior_threshold_spread" + suffix).fill_(spread)
            fitted |= {"fitted_prior_threshold" + suffix: threshold, "fitted_prior_threshold_spread" + suffix: spread}
        return fitted

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
        net: ConditionedDenoiser = self.ema.module if use_ema else self.net  # type: ignore[assignment]
        probs = self._prior_probs(images, self.prior_tta) if self.prior is not None else None  # once per batch
        condition = self._net_condition(net, images, probs).repeat(samples, 1, 1, 1)
        shape = (condition.shape[0], self.codec.latent_channels, *condition.shape[-2:])
        start = None
        if probs is not None and self.prior_strength < 1.0:
            start = self.prior_latents(images, probs, samples)
        latents = ddim_sample(
            net.denoiser,
            condition,
            shape,
            self.sample_scheduler,
            steps,
            self.guidance_scale,
            generator,
            start,
            self.prior_strength,
        )
        probs = torch.sigmoid(self.codec.decode(latents / self.latent_scale))
        if self.binary_samples:
            probs = (probs >= 0.5).float()
        return Ensemble(probs.reshape(samples, images.shape[0], *probs.shape[1:]))


def _fits_of_older_checkpoints(module, state_dict, prefix, *args) -> None:
    # Checkpoints written before the spread was fitted sampled with a fixed 0.5, the default then;
    # those written before the averaged map was fitted keep their plain fits for it too.
    state_dict.setdefault(prefix + "fitted_prior_threshold_spread", torch.tensor(0.5))
    for key in ("fitted_prior_threshold", "fitted_prior_threshold_spread"):
        if prefix + key in state_dict:
            state_dict.setdefault(prefix + key + "_tta", state_dict[prefix + key].clone())
