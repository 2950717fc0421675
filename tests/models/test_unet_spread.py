"""The UNet's samples: one repeated map, or with model.threshold_spread its map at several thresholds."""

from platform.build import build_model
from platform.config import load_config

import pytest
import torch

UNET = ["data=synthetic", "model=unet", "model.encoder_channels=[4,8]", "model.tta=false"]  # a fixed map: no views


def _unet(spread: float):
    model = build_model(load_config([*UNET, f"model.threshold_spread={spread}"])).eval()
    logits = torch.linspace(-4.0, 4.0, 2 * 16 * 16).reshape(2, 1, 16, 16)  # every probability, two images
    model.forward = lambda images: logits
    return model, torch.sigmoid(logits)


def test_without_a_spread_every_sample_is_the_one_map():
    model, probs = _unet(0.0)
    ensemble = model.sample(torch.zeros(2, 1, 16, 16), samples=4)
    assert ensemble.probs.shape == (4, 2, 1, 16, 16)
    assert all(torch.equal(sample, probs) for sample in ensemble.probs)


def test_with_a_spread_sample_k_is_the_map_thresholded_at_its_own_threshold():
    model, probs = _unet(0.5)
    ensemble = model.sample(torch.zeros(2, 1, 16, 16), samples=5)
    thresholds = 0.5 * torch.exp(0.5 * torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    for k in range(5):
        # the mask at 0.5 of the shifted map is the map at t_k; one pixel may sit on the edge in float32
        assert (ensemble.masks[k] != (probs >= thresholds[k])).sum() <= 1
    assert torch.equal(ensemble.probs[2], probs)  # the middle sample keeps the map itself
    marked = ensemble.masks.sum(dim=(1, 2, 3, 4))
    assert (marked[:-1] > marked[1:]).all()  # nested: a lower threshold marks a superset


def test_the_spread_is_a_unet_key_with_a_bounded_value():
    with pytest.raises(Exception, match="model.threshold_spread"):
        load_config([*UNET, "model.threshold_spread=-0.5"])
    with pytest.raises(Exception, match="model.prior_threshold_spread"):  # the error names the latent model's key
        load_config(["data=synthetic", "model=medseglatdiff", "model.threshold_spread=0.5"])


def test_a_threshold_above_one_is_an_empty_sample_not_a_nan():
    model, probs = _unet(3.0)
    ensemble = model.sample(torch.zeros(2, 1, 16, 16), samples=16)
    assert not ensemble.probs.isnan().any()
    empty = ensemble.masks.sum(dim=(1, 2, 3, 4)) == 0
    assert empty.tolist() == [False] * 10 + [True] * 6  # 0.5·e^(3·q_k) > 1 for the six largest q_k


def test_with_majority_at_threshold_the_mean_mask_is_the_map_at_one_half():
    model, probs = _unet(1.5)
    plain = model.sample(torch.zeros(2, 1, 16, 16), samples=16)
    assert ((plain.masks.float().mean(0) >= 0.5) & (probs < 0.5)).any()  # a symmetric even set marks more
    model.majority_at_threshold = True
    ensemble = model.sample(torch.zeros(2, 1, 16, 16), samples=16)
    # the majority of the samples marks a pixel exactly where the map does; float32 may move one edge pixel
    assert ((ensemble.masks.float().mean(0) >= 0.5) != (probs >= 0.5)).sum() <= 1
    assert build_model(load_config([*UNET, "model.majority_at_threshold=true"])).majority_at_threshold
