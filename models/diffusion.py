"""Noise schedule, training objective, DDIM sampling and classifier-free guidance.

Schedulers are MONAI's; any denoiser `f(z_t, t, condition)` works with them."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def make_schedulers(timesteps: int, schedule: str, prediction: str) -> tuple[DDPMScheduler, DDIMScheduler]:
    """Training (DDPM) and sampling (DDIM) schedulers sharing one beta schedule.

    clip_sample=False: MONAI's default clamps predicted x0 to [−1, 1], which for unit-variance
    latents decodes every sample to an empty mask (seen on LIDC)."""
    kwargs = dict(num_train_timesteps=timesteps, schedule=schedule, prediction_type=prediction, clip_sample=False)
    if schedule == "scaled_linear_beta":
        kwargs.update(beta_start=0.0015, beta_end=0.0195)
    return DDPMScheduler(**kwargs), DDIMScheduler(**kwargs)  # type: ignore[arg-type]


def diffusion_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    condition: torch.Tensor,
    scheduler: DDPMScheduler,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """MSE between the denoiser's output and its target (ε, or v for v-prediction). x0: B×c×h×w."""
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    t = torch.randint(0, scheduler.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    target = scheduler.get_velocity(x0, noise, t) if scheduler.prediction_type == "v_prediction" else noise
    return F.mse_loss(denoiser(x_t, t, condition), target)


def guided_output(
    denoiser: Denoiser, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor, scale: float | None
) -> torch.Tensor:
    """Denoiser output with classifier-free guidance: out_u + scale·(out_c − out_u).

    `scale=None` means plain conditional output (concatenation). The conditional and the
    unconditional (all-zero condition) passes run as one batch of 2B."""
    if scale is None:
        return denoiser(x_t, t, condition)
    both = denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([condition, torch.zeros_like(condition)]))
    conditional, unconditional = both.chunk(2)
    return unconditional + scale * (conditional - unconditional)


@torch.no_grad()
def ddim_sample(
    denoiser: Denoiser,
    condition: torch.Tensor,
    latent_shape: tuple[int, ...],
    scheduler: DDIMScheduler,
    steps: int,
    guidance_scale: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0) from Gaussian noise: B×c×h×w latents for condition B×k×h×w."""
    scheduler.set_timesteps(steps, device=condition.device)
    x = torch.randn(latent_shape, generator=generator, device=condition.device)
    for t in scheduler.timesteps:
        batch_t = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        output = guided_output(denoiser, x, batch_t, condition, guidance_scale)
        x, _ = scheduler.step(output, int(t), x)
    return x
