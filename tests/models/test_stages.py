"""The model/stage contract: each kind declares its stages; the loop needs nothing else."""

from platform.build import build_model
from platform.config import load_config
from platform.errors import ConfigError

import pytest
import torch

from models.losses import SegmentationLoss
from models.stages import StageLosses
from tests.conftest import TINY

LOSSES = StageLosses(SegmentationLoss(5.0, 1.0), 1e-6)


def _stages(*overrides):
    model = build_model(load_config([*TINY, *overrides]))
    return model, model.stages(LOSSES)


def test_each_kind_declares_its_stages_in_order():
    names = {
        kind: [s.name for s in _stages(f"model={kind}")[1]] for kind in ("medseglatdiff", "pixel_diffusion", "unet")
    }
    assert names == {
        "medseglatdiff": ["autoencoder", "prior", "diffusion"],
        "pixel_diffusion": ["diffusion"],
        "unet": ["segmenter"],
    }
    plain = [s.name for s in _stages("model.prior=false", "model.prior_strength=1.0")[1]]
    assert plain == ["autoencoder", "diffusion"]
    pretrained = [s.name for s in _stages("model.image_encoder_init=autoencoder")[1]]
    assert pretrained == ["autoencoder", "image_autoencoder", "prior", "diffusion"]


def test_diffusion_stage_freezes_the_codec_trains_the_net_and_updates_ema():
    model, stages = _stages("model.prior=false", "model.prior_strength=1.0")
    autoencoder, diffusion = stages
    assert diffusion.requires == ("autoencoder",) and diffusion.budget == ("diffusion_steps",)
    assert {id(p) for p in diffusion.parameters()} == {id(p) for p in model.net.parameters()}
    assert {id(p) for p in autoencoder.parameters()} == {id(p) for p in model.codec.parameters()}
    diffusion.freeze()
    assert not any(p.requires_grad for p in model.codec.parameters()) and not model.codec.training
    images, masks = torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    diffusion.loss(images, masks).backward()
    assert all(p.grad is None for p in model.codec.parameters())
    assert model.ema.n_averaged.item() == 0
    diffusion.after_step()
    assert model.ema.n_averaged.item() == 1


def test_autoencoder_stage_learns_the_latent_scale_at_its_end():
    model, (autoencoder, *_) = _stages()
    learned = autoencoder.after_stage(torch.randn(8, 1, 32, 32), (torch.rand(8, 4, 32, 32) > 0.7).float())
    assert set(learned) == {"latent_scale"} and learned["latent_scale"] > 0
    assert model.latent_scale.item() == pytest.approx(learned["latent_scale"], rel=1e-6)


def test_unet_stage_has_the_budget_of_both_latent_stages():
    _, (segmenter,) = _stages("model=unet")
    assert segmenter.budget == ("ae_steps", "diffusion_steps") and segmenter.requires == ()


def test_conditioning_shorthand_and_split_keys_agree():
    cfg = load_config(["model.conditioning=cfg"]).model
    assert cfg.guidance and cfg.condition_entry == "concat" and cfg.conditioning == "cfg"
    explicit = load_config(["model.guidance=true"]).model
    assert explicit.guidance and explicit.mode == "cfg"
    plain = load_config([]).model
    assert not plain.guidance and plain.mode == "concat"
    with pytest.raises(ConfigError, match="model.guidance"):
        load_config(["model.conditioning=concat", "model.guidance=true"])


def test_prior_stage_fits_the_start_threshold_into_a_buffer_it_owns():
    model, (_, prior, _) = _stages("model.tta=false")  # the plain map's fits (the averaged map's: test_tta.py)
    assert "fitted_prior_threshold".startswith(prior.owns) and model.start_threshold == 0.5  # before fitting
    model.prior.forward = lambda images: torch.logit(torch.full_like(images[:, :1], 0.3))  # under-confident
    annotations = torch.zeros(4, 4, 32, 32)
    annotations[:, :3, 8:16, 8:16] = 1  # three of four annotators mark the same square
    learned = prior.after_stage(torch.randn(4, 1, 32, 32), annotations)
    assert learned["fitted_prior_threshold"] == pytest.approx(0.3)
    assert learned["fitted_prior_threshold_spread"] == model.start_spread == 0.25  # some empty samples: annotator 4
    assert "fitted_prior_threshold_spread".startswith(prior.owns)  # stored and reused with the prior
    assert model.fitted_prior_threshold.item() == pytest.approx(0.3) and "fitted_prior_threshold" in model.state_dict()
    assert model.start_threshold == pytest.approx(0.3)
    fixed, _ = _stages("model.prior_threshold=0.5")
    fixed.fitted_prior_threshold.fill_(0.3)
    assert fixed.start_threshold == 0.5  # a configured threshold overrides the fitted one


def test_the_prior_stage_fits_the_spread_around_a_configured_threshold(monkeypatch):
    import models.medseglatdiff as medseglatdiff

    centers = []
    monkeypatch.setattr(medseglatdiff, "best_threshold", lambda probs, annotations: 0.3)
    monkeypatch.setattr(medseglatdiff, "best_spread", lambda probs, annotations, center: centers.append(center) or 1.0)
    annotations = torch.zeros(4, 4, 32, 32)
    for overrides, expected in ((["model.prior_threshold=0.5"], 0.5), (["model.prior_threshold=null"], 0.3)):
        centers.clear()
        model, (_, prior, _) = _stages(*overrides)
        learned = prior.after_stage(torch.randn(4, 1, 32, 32), annotations)
        assert centers == [expected, expected]  # the plain and the view-averaged map
        assert learned["fitted_prior_threshold"] == 0.3  # the fitted value is still recorded
        assert model.start_spread == 1.0 and model.start_threshold == expected
