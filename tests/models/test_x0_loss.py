"""The mask-space loss on the decoded x̂0, the prior stage and sampling from the prior."""

import math
from platform.build import SAMPLING_ONLY, build_model
from platform.config import load_config

import pytest
import torch

from models.diffusion import estimate_x0
from models.losses import SegmentationLoss
from models.stages import StageLosses
from tests.conftest import TINY

LOSSES = StageLosses(SegmentationLoss(5.0, 1.0), 1e-6)


def test_estimate_x0_inverts_the_forward_process():
    x0, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    alpha_bar = torch.tensor([0.9, 0.5, 0.1])
    a = alpha_bar.view(-1, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
    assert torch.allclose(estimate_x0(noise, x_t, alpha_bar, "epsilon"), x0, atol=1e-5)
    velocity = a.sqrt() * noise - (1 - a).sqrt() * x0
    assert torch.allclose(estimate_x0(velocity, x_t, alpha_bar, "v_prediction"), x0, atol=1e-5)


def test_x0_loss_reaches_denoiser_and_encoder_never_the_frozen_decoder():
    model = build_model(load_config([*TINY, "model.x0_loss_weight=1.0"]))
    diffusion = model.stages(LOSSES)[-1]
    diffusion.freeze()
    with torch.no_grad():  # MONAI zero-initialises the denoiser's output layer: no input gradient at step 0
        for p in model.net.denoiser.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    images, masks = torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    diffusion.loss(images, masks).backward()
    assert all(p.grad is None for p in model.codec.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.denoiser.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.image_encoder.parameters())


def test_x0_loss_equals_a_hand_computation():
    model = build_model(load_config([*TINY, "model.x0_loss_weight=0.5", "model.truncate_timesteps=false"]))
    model.stages(LOSSES)[-1].freeze()
    images, masks = torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    total = model.diffusion_loss(images, masks, torch.Generator().manual_seed(0), LOSSES.segmentation.per_image)
    # the same draws by hand: noise, then t, as in denoising_step
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0 = model.codec.encode(masks)[0] * model.latent_scale
        noise = torch.randn(z0.shape, generator=generator)
        t = torch.randint(0, model.train_scheduler.num_train_timesteps, (2,), generator=generator)
        a = model.train_scheduler.alphas_cumprod[t]
        x_t = a.sqrt().view(-1, 1, 1, 1) * z0 + (1 - a).sqrt().view(-1, 1, 1, 1) * noise
        prior = torch.nn.functional.adaptive_avg_pool2d(torch.sigmoid(model.prior(images)), z0.shape[-2:])
        eps = model.net.denoiser(x_t, t, torch.cat([model.net.image_encoder(images), prior], 1))
        mse = ((eps - noise) ** 2).mean()
        x0_hat = (x_t - (1 - a).sqrt().view(-1, 1, 1, 1) * eps) / a.sqrt().view(-1, 1, 1, 1)
        logits = model.codec.decode(x0_hat / model.latent_scale)
        p = torch.sigmoid(logits)
        wce = -(5.0 * masks * torch.log(p) + (1 - masks) * torch.log(1 - p)).flatten(1).mean(1)
        dice = 1 - (2 * (p * masks).flatten(1).sum(1) + 1) / (p.flatten(1).sum(1) + masks.flatten(1).sum(1) + 1)
        expected = mse + 0.5 * (a * (wce + dice)).mean()
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-4)


def test_prior_is_its_own_stage_then_frozen_and_sampling_starts_from_it():
    model = build_model(load_config([*TINY, "model.prior_strength=0.5"]))
    stages = model.stages(LOSSES)
    assert [s.name for s in stages] == ["autoencoder", "prior", "diffusion"]
    prior, diffusion = stages[1], stages[2]
    assert diffusion.requires == ("autoencoder", "prior") and model.prior in diffusion.frozen
    assert {id(p) for p in prior.parameters()} == {id(p) for p in model.prior.unet.parameters()}  # not its average
    model.eval()
    ensemble = model.sample(torch.randn(2, 1, 32, 32), samples=3, steps=4, generator=torch.Generator().manual_seed(0))
    assert ensemble.probs.shape == (3, 2, 1, 32, 32)


def test_truncated_training_draws_only_the_timesteps_sampling_visits():
    overrides = [*TINY, "model.prior=true", "model.prior_strength=0.2", "model.train_timesteps=100"]
    model = build_model(load_config([*overrides, "model.truncate_timesteps=true"]))
    assert model.max_timestep == 20
    seen = []
    denoiser = model.net.denoiser.forward
    model.net.denoiser.forward = lambda x, t, c: seen.append(t) or denoiser(x, t, c)
    images, masks = torch.randn(8, 1, 32, 32), (torch.rand(8, 1, 32, 32) > 0.7).float()
    for _ in range(5):
        model.diffusion_loss(images, masks)
    drawn = torch.cat(seen)
    assert drawn.max() < 20 and drawn.min() >= 0 and len(drawn.unique()) > 5
    assert build_model(load_config([*overrides, "model.truncate_timesteps=false"])).max_timestep is None  # all T


def test_truncation_without_a_prior_to_start_from_trains_on_every_timestep():
    config = load_config([*TINY, "model.prior=false", "model.prior_strength=1.0", "model.truncate_timesteps=true"])
    assert build_model(config).max_timestep is None


@pytest.mark.parametrize("threshold, marked", [(0.3, True), (0.5, False)])
def test_the_start_mask_is_the_prior_map_at_the_threshold(threshold, marked):
    model = build_model(load_config([*TINY, f"model.prior_threshold={threshold}"]))
    model.codec.encode = lambda masks: (masks[:, :, ::4, ::4].repeat(1, 4, 1, 1),) * 2  # latent = mask pixels
    model.latent_scale.fill_(1.0)
    probs = torch.full((2, 1, 32, 32), 0.4)  # an under-confident prior: 0.4 everywhere
    latents = model.prior_latents(torch.randn(2, 1, 32, 32), probs)
    assert torch.equal(latents, torch.full((2, 4, 8, 8), float(marked)))


def test_a_threshold_spread_gives_each_sample_its_own_nested_start_mask():
    model = build_model(load_config([*TINY, "model.prior_threshold=0.4", "model.prior_threshold_spread=0.5"]))
    thresholds = model.start_thresholds(5)
    assert torch.allclose(thresholds, 0.4 * torch.exp(0.5 * torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])))
    assert model.start_thresholds(1).tolist() == pytest.approx([0.4])  # one sample keeps the threshold
    encoded = []
    model.codec.encode = lambda masks: encoded.append(masks) or (masks.repeat(1, 4, 1, 1),) * 2  # latent = mask
    model.latent_scale.fill_(1.0)
    probs = torch.zeros(2, 1, 32, 32)  # the second image: an empty mask at every threshold
    probs[0] = torch.linspace(0.0, 1.0, 32 * 32).reshape(1, 32, 32)  # the first: every probability
    latents = model.prior_latents(torch.randn(2, 1, 32, 32), probs, samples=5)
    masks = latents[:, :1].reshape(5, 2, 1, 32, 32)  # sample-major, as sample() repeats the condition
    for k in range(5):
        assert torch.equal(masks[k], (probs >= thresholds[k]).float())
    marked = masks[:, 0].sum(dim=(1, 2, 3))
    assert (marked[:-1] > marked[1:]).all()  # a lower threshold marks a superset: the masks are nested
    assert len(encoded[0]) == 6  # five masks of the first image, one (empty) of the second: each encoded once


def test_a_large_spread_starts_some_samples_from_an_empty_mask():
    model = build_model(load_config([*TINY, "model.prior_threshold=0.5", "model.prior_threshold_spread=3"]))
    thresholds = model.start_thresholds(16)
    assert thresholds.min() >= 0.01 and (thresholds > 1).sum() == 6  # q_k > ln 2 / 3: nothing reaches them
    with pytest.raises(Exception, match="model.prior_threshold_spread"):
        load_config([*TINY, "model.prior_threshold_spread=-1"])


def test_a_null_spread_samples_with_the_fitted_one_and_old_checkpoints_keep_theirs():
    model = build_model(load_config([*TINY, "model.prior_threshold=0.5", "model.prior_threshold_spread=null"]))
    model.fitted_prior_threshold_spread_tta.fill_(1.25)  # the fit of the map sampling uses (tta)
    assert model.prior_tta and model.start_spread == 1.25
    assert torch.allclose(model.start_thresholds(3), 0.5 * torch.exp(torch.tensor([-1.25, 0.0, 1.25])))
    old = {k: v for k, v in model.state_dict().items() if "fitted_prior_threshold_spread" not in k}
    model.load_state_dict(old)  # written before the spread was fitted: they sampled with 0.5
    assert model.start_spread == 0.5
    model.prior_tta = not model.prior_tta
    assert model.start_spread == 0.5


def test_majority_at_threshold_puts_the_eighth_of_sixteen_start_thresholds_at_the_threshold():
    overrides = [*TINY, "model.prior_threshold=0.4", "model.prior_threshold_spread=1.5"]
    symmetric = build_model(load_config([*overrides, "model.majority_at_threshold=false"]))
    assert symmetric.start_thresholds(16)[7] < 0.4  # the start masks' majority marks below the threshold
    model = build_model(load_config([*overrides, "model.majority_at_threshold=true"]))
    assert model.start_thresholds(16)[7] == pytest.approx(0.4)
    assert model.start_thresholds(16).max() == pytest.approx(0.4 * math.exp(1.5))
    assert torch.equal(model.start_thresholds(5), symmetric.start_thresholds(5))  # an odd count: unchanged
    assert "model.majority_at_threshold" in SAMPLING_ONLY
