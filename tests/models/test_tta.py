"""Test-time augmentation: maps averaged over the 8 flips and 90° rotations, for the UNet and the prior."""

from platform.build import build_model
from platform.config import load_config

import pytest
import torch

from models.thresholds import best_threshold
from models.tta import dihedral_mean
from tests.conftest import TINY
from tests.models.test_x0_loss import LOSSES


def test_an_equivariant_map_is_unchanged_and_a_biased_one_is_symmetrised():
    images = torch.rand(2, 1, 8, 8)
    assert torch.allclose(dihedral_mean(torch.sigmoid, images), torch.sigmoid(images))
    corner = torch.zeros(2, 1, 8, 8)
    corner[..., 0, 0] = 1.0  # a map that always marks the top-left pixel, whatever the image
    averaged = dihedral_mean(lambda views: corner, images)
    for row, col in [(0, 0), (0, 7), (7, 0), (7, 7)]:
        assert torch.allclose(averaged[..., row, col], torch.full((2, 1), 0.25))
    assert float(averaged.sum()) == pytest.approx(2.0)


def _flip_commutes(sample, images):
    a = sample(images).probs
    b = sample(images.flip(-1)).probs.flip(-1)
    return torch.allclose(a, b, atol=1e-6)


def test_the_unet_with_tta_samples_the_averaged_map():
    config = load_config(["data=synthetic", "model=unet", "model.encoder_channels=[4,8]", "model.tta=true"])
    model = build_model(config).eval()
    images = torch.randn(2, 1, 16, 16)
    ensemble = model.sample(images, samples=3)
    expected = dihedral_mean(lambda views: torch.sigmoid(model(views)), images)
    assert all(torch.allclose(sample, expected) for sample in ensemble.probs)
    assert _flip_commutes(lambda x: model.sample(x, samples=1), images)  # a random net is not, without TTA
    model.tta = False
    assert not _flip_commutes(lambda x: model.sample(x, samples=1), images)


def test_the_latent_model_conditions_and_starts_on_the_prior_averaged_map():
    model = build_model(load_config([*TINY, "model.prior=true", "model.prior_strength=0.2", "model.tta=true"])).eval()
    images = torch.randn(2, 1, 32, 32)
    seen = []
    prior_forward = model.prior.forward
    model.prior.forward = lambda views: seen.append(views) or prior_forward(views)
    model.sample(images, samples=2, steps=2)
    assert len(seen) == 8  # one pass per view
    assert any(torch.equal(view, images.flip(-1)) for view in seen)
    probs = model._prior_probs(images, tta=True)
    assert torch.allclose(model._prior_probs(images.flip(-2), tta=True), probs.flip(-2), atol=1e-6)


def test_a_latent_model_without_a_prior_has_no_map_to_average_and_samples_as_before():
    config = load_config([*TINY, "model.prior=false", "model.prior_strength=1.0"])  # the YAML's tta stays on
    assert config.model.tta
    model = build_model(config).eval()
    images = torch.randn(2, 1, 32, 32)

    def sampled():
        return model.sample(images, samples=2, steps=2, generator=torch.Generator().manual_seed(0)).probs

    plain = sampled()
    model.prior_tta = False
    assert torch.equal(plain, sampled())


def _square_annotations():
    annotations = torch.zeros(4, 4, 32, 32)
    annotations[:, :2, 8:16, 8:16] = 1  # two of four annotators mark a square
    return annotations


def test_the_prior_stage_fits_each_map_and_sampling_uses_the_fits_of_its_own():
    model = build_model(load_config([*TINY, "model.prior_threshold=null", "model.prior_threshold_spread=null"]))
    prior_stage = model.stages(LOSSES)[1]
    ramp = torch.linspace(0.02, 0.98, 32).view(1, 1, 1, 32).expand(4, 1, 32, 32)  # left to right: views differ
    model.prior.forward = lambda images: torch.logit(ramp[: len(images)])
    learned = prior_stage.after_stage(torch.randn(4, 1, 32, 32), _square_annotations())
    assert set(learned) == {
        "fitted_prior_threshold",
        "fitted_prior_threshold_spread",
        "fitted_prior_threshold_tta",
        "fitted_prior_threshold_spread_tta",
    }
    assert all(key.startswith(prior_stage.owns) for key in learned)  # stored and reused with the prior
    averaged = dihedral_mean(lambda views: torch.sigmoid(model.prior(views)), torch.randn(4, 1, 32, 32))
    assert learned["fitted_prior_threshold_tta"] == best_threshold(averaged, _square_annotations())
    assert learned["fitted_prior_threshold"] == best_threshold(ramp, _square_annotations())
    assert learned["fitted_prior_threshold"] != learned["fitted_prior_threshold_tta"]  # the ramp averages to a bump
    model.prior_tta = True
    assert (model.start_threshold, model.start_spread) == pytest.approx(
        (learned["fitted_prior_threshold_tta"], learned["fitted_prior_threshold_spread_tta"])
    )
    model.prior_tta = False
    assert (model.start_threshold, model.start_spread) == pytest.approx(
        (learned["fitted_prior_threshold"], learned["fitted_prior_threshold_spread"])
    )


def test_a_checkpoint_from_before_the_averaged_fits_samples_the_averaged_map_with_its_plain_fits():
    model = build_model(load_config([*TINY, "model.prior_threshold=null", "model.prior_threshold_spread=null"]))
    model.fitted_prior_threshold.fill_(0.35)
    model.fitted_prior_threshold_spread.fill_(2.5)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith("_tta")}
    fresh = build_model(load_config([*TINY, "model.prior_threshold=null", "model.prior_threshold_spread=null"]))
    fresh.load_state_dict(old)
    assert fresh.prior_tta and (fresh.start_threshold, fresh.start_spread) == pytest.approx((0.35, 2.5))
