"""Binary samples: the latent model's confidence map is the share of its sampled masks marking a pixel."""

from platform.build import SAMPLING_ONLY, build_model, stage_inputs
from platform.config import load_config

import torch

from tests.conftest import TINY


def _model():
    """The soft model: each test turns binary samples on itself."""
    config = load_config([*TINY, "model.prior=true", "model.prior_strength=0.2", "model.binary_samples=false"])
    return build_model(config).eval()


def _sampled(model, images):
    return model.sample(images, samples=4, steps=2, generator=torch.Generator().manual_seed(0))


def test_each_sample_becomes_its_mask_and_the_mean_counts_them():
    model = _model()
    images = torch.randn(2, 1, 32, 32)
    soft = _sampled(model, images)
    model.binary_samples = True
    binary = _sampled(model, images)
    assert torch.equal(binary.probs, (soft.probs >= 0.5).float())  # the same draws, thresholded
    assert torch.equal(binary.masks, soft.masks)  # so GED and per-sample Dice do not move
    assert torch.equal(binary.mean * 4, binary.masks.float().sum(0))


def test_a_pixel_half_the_samples_mark_stays_in_the_mean_mask():
    model = _model()
    # decoded probabilities of one pixel in 4 samples: two soft marks at a rim, two clear misses
    logits = torch.logit(torch.tensor([0.6, 0.6, 0.1, 0.1])).view(4, 1, 1, 1).expand(4, 1, 32, 32)
    model.codec.decode = lambda latents: logits
    images = torch.randn(1, 1, 32, 32)
    soft = float(_sampled(model, images).mean[0, 0, 0, 0])
    model.binary_samples = True
    binary = float(_sampled(model, images).mean[0, 0, 0, 0])
    assert abs(soft - 0.35) < 1e-6 and soft < 0.5  # (0.6 + 0.6 + 0.1 + 0.1) / 4: out of the mean mask
    assert binary == 0.5  # two votes of four: in it


def test_the_latent_model_samples_masks_by_default_and_no_stage_reads_the_key():
    config = load_config(TINY)
    assert build_model(config).binary_samples
    assert not build_model(load_config([*TINY, "model.binary_samples=false"])).binary_samples
    assert "model.binary_samples" in SAMPLING_ONLY
    assert "model.binary_samples" not in stage_inputs(config, "diffusion", ("diffusion_steps",), 5.0)
