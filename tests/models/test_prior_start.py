"""Training the denoiser from the prior's masks (model.prior_start_share) and x0-prediction."""

from platform.build import build_model
from platform.config import load_config
from platform.errors import ConfigError

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from models.diffusion import denoising_step, estimate_x0
from models.losses import SegmentationLoss
from models.stages import StageLosses
from tests.conftest import TINY

LOSSES = StageLosses(SegmentationLoss(5.0, 1.0), 1e-6)


class Recorder:
    """A denoiser that outputs zeros and keeps what it was given."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        self.x_t, self.t = x_t, t
        return torch.zeros_like(x_t)


def scheduler(prediction: str) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=100, prediction_type=prediction, clip_sample=False)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_the_target_leads_from_the_noised_origin_to_x0(prediction):
    x0, origin, condition = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2), torch.zeros(3, 1, 2, 2)
    schedule, denoiser = scheduler(prediction), Recorder()
    loss, _, alpha_bar = denoising_step(
        denoiser, x0, condition, schedule, torch.Generator().manual_seed(1), None, origin
    )
    generator = torch.Generator().manual_seed(1)  # the same draws by hand: noise, then t
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.randint(0, 100, (3,), generator=generator)
    a = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.equal(denoiser.t, t) and torch.allclose(alpha_bar, a.flatten())
    assert torch.allclose(denoiser.x_t, a.sqrt() * origin + (1 - a).sqrt() * noise, atol=1e-6)
    # the output that would be exact: its x̂0 is x0, not the origin
    eps = (denoiser.x_t - a.sqrt() * x0) / (1 - a).sqrt()
    exact = {"epsilon": eps, "v_prediction": a.sqrt() * eps - (1 - a).sqrt() * x0, "sample": x0}[prediction]
    assert torch.allclose(estimate_x0(exact, denoiser.x_t, alpha_bar, prediction), x0, atol=1e-4)
    assert torch.allclose(loss, (exact**2).mean(), rtol=1e-5)  # the recorder output zeros


def test_origin_equal_to_x0_is_the_plain_objective():
    x0, condition = torch.randn(3, 4, 2, 2), torch.zeros(3, 1, 2, 2)
    schedule = scheduler("epsilon")
    plain = denoising_step(Recorder(), x0, condition, schedule, torch.Generator().manual_seed(2))
    same = denoising_step(Recorder(), x0, condition, schedule, torch.Generator().manual_seed(2), None, x0)
    assert all(torch.equal(a, b) for a, b in zip(plain, same, strict=True))


def tiny_model(share: float, prediction: str = "epsilon"):
    model = build_model(load_config([*TINY, f"model.prior_start_share={share}", f"model.prediction={prediction}"]))
    model.stages(LOSSES)[-1].freeze()
    model.fitted_prior_threshold.fill_(0.5)
    return model


def test_the_drawn_share_starts_from_the_priors_masks_at_drawn_thresholds():
    model = tiny_model(0.5)
    latents, probs = torch.randn(6, model.codec.latent_channels, 8, 8), torch.rand(6, 1, 32, 32)
    origins = model._training_origins(latents, probs, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)  # the same draws by hand: who, then where
    chosen = torch.rand(6, generator=generator) < 0.5
    thresholds = 0.5 * torch.exp(torch.rand(6, generator=generator) * 2 - 1)
    assert 0 < int(chosen.sum()) < 6
    for k in range(6):
        mask = (probs[k : k + 1] >= min(0.99, float(thresholds[k]))).float()
        expected = model.codec.encode(mask)[0] * model.latent_scale if chosen[k] else latents[k : k + 1]
        assert torch.allclose(origins[k : k + 1], expected, atol=1e-5)


def test_the_share_is_drawn_and_zero_draws_nothing():
    latents, probs = torch.randn(400, 4, 8, 8), torch.rand(400, 1, 32, 32)
    assert tiny_model(0.0)._training_origins(latents, probs, torch.Generator().manual_seed(0)) is None
    origins = tiny_model(0.25)._training_origins(latents, probs, torch.Generator().manual_seed(0))
    moved = (origins != latents).flatten(1).any(1).float().mean()
    assert 0.18 < float(moved) < 0.32


@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
def test_prior_start_training_reaches_the_denoiser_and_sampling_still_works(prediction):
    model = tiny_model(1.0, prediction)
    images, masks = torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    loss = model.diffusion_loss(images, masks, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in [*model.codec.parameters(), *model.prior.parameters()])
    probs = model.sample(images, 2, steps=2).probs
    assert probs.shape == (2, 2, 1, 32, 32) and bool(torch.isfinite(probs).all())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.prior_start_share=1.5"], "model.prior_start_share"),
        (["model.prior=false", "model.prior_strength=1.0", "model.prior_start_share=0.5"], "model.prior_start_share"),
        (["model.prediction=x0"], "model.prediction"),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError, match=key):
        load_config(["model=medseglatdiff", *overrides])
