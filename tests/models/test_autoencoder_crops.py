"""The mask autoencoder trained on random crops: each crop is a window of its own mask."""

from platform.build import build_model
from platform.config import load_config
from platform.errors import ConfigError

import pytest
import torch

from models.autoencoder import random_crops
from tests.conftest import TINY
from tests.models.test_x0_loss import LOSSES


def test_each_crop_is_a_window_of_its_own_mask():
    torch.manual_seed(0)
    masks = torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(3, 1, 16, 16)  # every value unique
    crops = random_crops(masks, 8)
    assert crops.shape == (3, 1, 8, 8)
    for mask, crop in zip(masks, crops, strict=True):
        r, c = divmod(int(crop[0, 0, 0]) % 256, 16)  # mask b holds b·256 + r·16 + c at (r, c)
        assert torch.equal(mask[:, r : r + 8, c : c + 8], crop)
    offsets = {int(c[0, 0, 0]) for c in random_crops(masks[:1].expand(64, 1, 16, 16), 8)}
    assert len(offsets) > 10  # positions vary
    assert random_crops(masks, 0) is masks and random_crops(masks, 16) is masks


def test_the_autoencoder_stage_trains_on_crops_of_the_asked_side():
    model = build_model(load_config([*TINY, "model.ae_crop=16"]))
    seen = []
    codec_forward = model.codec.forward
    model.codec.forward = lambda masks: seen.append(masks.shape) or codec_forward(masks)
    autoencoder = model.stages(LOSSES)[0]
    autoencoder.loss(torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float())
    assert autoencoder.name == "autoencoder" and seen == [torch.Size([2, 1, 16, 16])]


@pytest.mark.parametrize("crop", [12, -16])
def test_bad_crop_sides_name_the_key(crop):
    with pytest.raises(ConfigError, match="model.ae_crop.*multiple of 4·latent_factor"):
        load_config([*TINY, f"model.ae_crop={crop}"])


def test_a_crop_as_large_as_the_image_trains_on_whole_masks():
    model = build_model(load_config([*TINY, "model.ae_crop=64"]))  # TINY images are 32 px
    seen = []
    codec_forward = model.codec.forward
    model.codec.forward = lambda masks: seen.append(masks.shape) or codec_forward(masks)
    model.stages(LOSSES)[0].loss(torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float())
    assert seen == [torch.Size([2, 1, 32, 32])]


def test_without_posterior_sampling_the_autoencoder_trains_on_the_posterior_mean():
    masks = (torch.rand(2, 1, 32, 32) > 0.7).float()
    deterministic = build_model(load_config([*TINY, "model.ae_sample_posterior=false"])).codec
    mean_decoded = deterministic.decode(deterministic.encode(masks)[0])
    assert torch.equal(deterministic(masks)[0], mean_decoded)  # no noise drawn: the same every call
    variational = build_model(load_config([*TINY, "model.ae_sample_posterior=true"])).codec  # the paper's VAE
    assert not torch.allclose(variational(masks)[0], variational.decode(variational.encode(masks)[0]))
