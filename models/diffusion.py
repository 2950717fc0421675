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
    max_timestep: int | None = None,
    origin: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between the denoiser's output and its target (ε, v or x0; see `denoising_step`). x0: B×c×h×w."""
    return denoising_step(denoiser, x0, condition, scheduler, generator, max_timestep, origin)[0]


def denoising_step(
    denoiser: Denoiser,
    x0: torch.Tensor,
    condition: torch.Tensor,
    scheduler: DDPMScheduler,
    generator: torch.Generator | None = None,
    max_timestep: int | None = None,
    origin: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One noised training example per x0 (B×c×h×w): (MSE to the target, the denoiser's estimate
    of x0 (B×c×h×w, differentiable), ᾱ_t per example (B)). t is uniform on [0, max_timestep)
    (default: every training timestep).

    `origin` (B×c×h×w, default x0): what is noised into x_t. The target still leads to x0: the
    noise ε* = (x_t − √ᾱ·x0)/√(1−ᾱ) that DDIM would read off x_t, its v, or x0 itself. With origin
    = a first guess of x0, the denoiser learns to correct that guess, not only to remove noise."""
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    high = scheduler.num_train_timesteps if max_timestep is None else max_timestep
    t = torch.randint(0, high, (x0.shape[0],), generator=generator, device=x0.device)
    alpha_bar = scheduler.alphas_cumprod.to(x0.device)[t]
    x_t = scheduler.add_noise(x0 if origin is None else origin, noise, t)
    if origin is not None:
        a = alpha_bar.view(-1, *([1] * (x0.dim() - 1)))
        noise = noise + (a / (1 - a)).sqrt() * (origin - x0)  # exactly ε where origin equals x0
    output = denoiser(x_t, t, condition)
    if scheduler.prediction_type == "v_prediction":
        target = scheduler.get_velocity(x0, noise, t)
    else:
        target = x0 if scheduler.prediction_type == "sample" else noise
    return F.mse_loss(output, target), estimate_x0(output, x_t, alpha_bar, scheduler.prediction_type), alpha_bar


def estimate_x0(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, prediction: str) -> torch.Tensor:
    """x̂0 from an ε-, v- or x0-prediction: (x_t − √(1−ᾱ)·ε̂)/√ᾱ, √ᾱ·x_t − √(1−ᾱ)·v̂, or the output
    itself. alpha_bar: B."""
    if prediction == "sample":
        return output
    a = alpha_bar.view(-1, *([1] * (x_t.dim() - 1)))
    if prediction == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * output
    return (x_t - (1 - a).sqrt() * output) / a.sqrt()


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
    start: torch.Tensor | None = None,
    strength: float = 1.0,
) -> torch.Tensor:
    """Deterministic DDIM (η = 0): B×c×h×w latents for condition B×k×h×w.

    From Gaussian noise; or, given `start` latents (B×c×h×w) and `strength` s in (0, 1], from
    `start` noised to the timestep s·T and denoised from there (SDEdit): s = 1 is pure noise, a
    small s stays close to `start`."""
    scheduler.set_timesteps(steps, device=condition.device)
    x = torch.randn(latent_shape, generator=generator, device=condition.device)
    timesteps = scheduler.timesteps
    if start is not None and strength < 1.0:
        first = int(strength * scheduler.num_train_timesteps)
        timesteps = timesteps[timesteps < max(first, 1)]
        if len(timesteps) == 0:
            return start
        x = scheduler.add_noise(start, x, timesteps[:1].repeat(x.shape[0]))
    for t in timesteps:
        batch_t = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        output = guided_output(denoiser, x, batch_t, condition, guidance_scale)
        x, _ = scheduler.step(output, int(t), x)
    return x
