"""The mask autoencoder trained on random crops: each crop is a window of its own mask."""

from platform.build import build_model
from platform.config import load_config
from platform.errors import ConfigError

import pytest
import torch

from models.crops import random_crops
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


def test_foreground_crops_hold_foreground_wherever_it_lies():
    torch.manual_seed(0)
    masks = torch.zeros(4, 1, 64, 64)
    masks[0, 0, 30:33, 40:42] = 1  # a small lesion near the middle
    masks[1, 0, 0, 63] = 1  # one pixel in a corner: the window must clip to the image
    masks[2, 0, 60:64, 0:3] = 1
    repeated = masks.repeat(50, 1, 1, 1)  # mask 3 stays empty
    crops = random_crops(repeated, 16, on_foreground=True)
    assert crops.shape == (200, 1, 16, 16)
    held = crops.flatten(1).sum(1).view(50, 4)
    assert (held[:, :3] > 0).all() and (held[:, 3] == 0).all()
    uniform = random_crops(repeated, 16).flatten(1).sum(1).view(50, 4)
    assert (uniform[:, 0] == 0).sum() > 10  # without it most windows miss the lesion


def test_foreground_crops_are_windows_of_their_own_mask_at_varying_places():
    torch.manual_seed(1)
    values = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 1, 32, 32) + 1  # every pixel unique, all > 0
    crops = random_crops(values.expand(40, 1, 32, 32), 8, on_foreground=True)
    for crop in crops:
        r, c = divmod(int(crop[0, 0, 0]) - 1, 32)
        assert torch.equal(values[0, :, r : r + 8, c : c + 8], crop)
    assert len({int(c[0, 0, 0]) for c in crops}) > 10


def test_the_autoencoder_stage_trains_on_crops_of_the_asked_side():
    model = build_model(load_config([*TINY, "model.ae_crop=16"]))
    seen = []
    codec_forward = model.codec.forward
    model.codec.forward = lambda masks: seen.append(masks.shape) or codec_forward(masks)
    autoencoder = model.stages(LOSSES)[0]
    autoencoder.loss(torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float())
    assert autoencoder.name == "autoencoder" and seen == [torch.Size([2, 1, 16, 16])]


def test_the_autoencoder_stage_crops_on_foreground_when_asked():
    model = build_model(load_config([*TINY, "model.ae_crop=16", "model.ae_crop_foreground=true"]))
    seen = []
    codec_forward = model.codec.forward
    model.codec.forward = lambda masks: seen.append(masks) or codec_forward(masks)
    masks = torch.zeros(8, 1, 32, 32)
    masks[:, 0, 2, 29] = 1  # one pixel a uniform 16 px window holds one time in four
    model.stages(LOSSES)[0].loss(torch.randn(8, 1, 32, 32), masks)
    assert (seen[0].flatten(1).sum(1) == 1).all()


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
