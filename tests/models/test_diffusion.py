import pytest
import torch

from models.autoencoder import MaskAutoencoder, PixelMaskCodec
from models.denoiser import ConcatDenoiser, ImageEncoder
from models.diffusion import ddim_sample, guided_output, make_schedulers
from models.medseglatdiff import MedSegLatDiff


def _model(factor=4, latent=4, guidance=None, p_uncond=0.0):
    channels = [16] + [32] * (factor.bit_length() - 1)
    codec = MaskAutoencoder(channels, latent) if factor > 1 else PixelMaskCodec()
    encoder = ImageEncoder(1, [16, 32, 32], 8, factor)
    denoiser = ConcatDenoiser(codec.latent_channels, 8, [16, 32], [False, True])
    train, sample = make_schedulers(1000, "scaled_linear_beta", "epsilon")
    return MedSegLatDiff(codec, encoder, denoiser, train, sample, 1.0, p_uncond, guidance)


@pytest.mark.parametrize(("factor", "latent"), [(2, 1), (2, 4), (4, 2), (4, 4), (8, 4), (8, 8), (1, 1)])
def test_shapes_for_every_latent_size(factor, latent):
    model = _model(factor, latent)
    masks = (torch.rand(2, 1, 64, 64) > 0.5).float()
    mu, sigma = model.codec.encode(masks)
    expected_latent = latent if factor > 1 else 1
    assert mu.shape == sigma.shape == (2, expected_latent, 64 // factor, 64 // factor)
    assert model.codec.decode(mu).shape == (2, 1, 64, 64)
    assert model.net.image_encoder(torch.randn(2, 1, 64, 64)).shape == (2, 8, 64 // factor, 64 // factor)
    loss = model.diffusion_loss(torch.randn(2, 1, 64, 64), masks)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_ensemble_shapes_and_ranges():
    ensemble = _model().sample(
        torch.randn(3, 1, 32, 32), samples=5, steps=3, generator=torch.Generator().manual_seed(0)
    )
    assert ensemble.probs.shape == (5, 3, 1, 32, 32) and ensemble.masks.dtype == torch.bool
    for summary in (ensemble.probs, ensemble.mean, ensemble.variance):
        assert summary.min() >= 0 and summary.max() <= 1
    assert ensemble.mean.shape == ensemble.variance.shape == ensemble.entropy.shape == (3, 1, 32, 32)
    assert ensemble.entropy.min() >= 0 and ensemble.entropy.max() <= 1  # bits of a binary variable


def test_ddim_sampling_is_deterministic_under_a_seed():
    model, images = _model(), torch.randn(2, 1, 32, 32)
    a = model.sample(images, 4, 5, torch.Generator().manual_seed(3)).probs
    b = model.sample(images, 4, 5, torch.Generator().manual_seed(3)).probs
    c = model.sample(images, 4, 5, torch.Generator().manual_seed(4)).probs
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_guidance_scale_one_is_conditional_and_zero_is_unconditional():
    denoiser = _model().net.denoiser.eval()
    x, cond, t = torch.randn(2, 4, 8, 8), torch.randn(2, 8, 8, 8), torch.tensor([10, 500])
    conditional = denoiser(x, t, cond)
    unconditional = denoiser(x, t, torch.zeros_like(cond))
    torch.testing.assert_close(guided_output(denoiser, x, t, cond, 1.0), conditional, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(guided_output(denoiser, x, t, cond, 0.0), unconditional, rtol=1e-4, atol=1e-5)
    assert torch.equal(guided_output(denoiser, x, t, cond, None), conditional)
    guided = guided_output(denoiser, x, t, cond, 3.0)
    torch.testing.assert_close(guided, unconditional + 3 * (conditional - unconditional), rtol=1e-4, atol=1e-4)


def test_schedulers_do_not_clip_predicted_samples():
    train, sample = make_schedulers(1000, "scaled_linear_beta", "v_prediction")
    assert train.clip_sample is False and sample.clip_sample is False
    assert sample.prediction_type == "v_prediction"
    latents = ddim_sample(
        lambda x, t, c: torch.zeros_like(x),
        torch.zeros(1, 1, 4, 4),
        (1, 2, 4, 4),
        sample,
        5,
        generator=torch.Generator().manual_seed(0),
    )
    assert latents.shape == (1, 2, 4, 4)
