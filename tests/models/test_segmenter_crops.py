"""The UNet and the latent model's prior trained on image-mask windows: aligned, on foreground, of the asked side."""

from platform.build import build_model
from platform.config import load_config
from platform.errors import ConfigError

import pytest
import torch

from models.crops import paired_crops
from tests.conftest import TINY
from tests.models.test_x0_loss import LOSSES


def test_each_image_and_its_mask_are_cut_at_the_same_window():
    torch.manual_seed(0)
    images = torch.arange(6 * 2 * 16 * 16, dtype=torch.float32).reshape(6, 2, 16, 16)  # every value unique
    masks = torch.zeros(6, 1, 16, 16)
    masks[:3, 0, 5, 3:6] = 1  # an asymmetric lesion: a row of three pixels, off the centre
    images_cut, masks_cut = paired_crops(images, masks, 8)
    assert images_cut.shape == (6, 2, 8, 8) and masks_cut.shape == (6, 1, 8, 8)
    for image, mask, image_cut, mask_cut in zip(images, masks, images_cut, masks_cut, strict=True):
        r, c = divmod(int(image_cut[0, 0, 0] - image[0, 0, 0]), 16)  # the window's top-left corner
        assert torch.equal(image[:, r : r + 8, c : c + 8], image_cut)
        assert torch.equal(mask[:, r : r + 8, c : c + 8], mask_cut)
    assert (masks_cut[:3].flatten(1).sum(1) > 0).all()  # marked masks keep some of their lesion


def test_windows_of_marked_masks_hold_foreground_unless_asked_otherwise():
    torch.manual_seed(0)
    masks = torch.zeros(200, 1, 64, 64)
    masks[:, 0, 2, 60] = 1  # one pixel near a corner: a uniform 16 px window holds it one time in 200
    images = torch.randn(200, 1, 64, 64)
    assert (paired_crops(images, masks, 16)[1].flatten(1).sum(1) == 1).all()
    uniform = paired_crops(images, masks, 16, on_foreground=False)[1].flatten(1).sum(1)
    assert (uniform == 0).sum() > 100


def test_side_zero_or_the_whole_image_leaves_the_batch_as_it_is():
    images, masks = torch.randn(2, 1, 16, 16), torch.zeros(2, 1, 16, 16)
    for side in (0, 16, 32):
        cut_images, cut_masks = paired_crops(images, masks, side)
        assert cut_images is images and cut_masks is masks


def _seen_sizes(network: torch.nn.Module) -> list[torch.Size]:
    seen: list[torch.Size] = []
    forward = network.forward
    network.forward = lambda images: seen.append(images.shape) or forward(images)
    return seen


def test_the_unet_stage_trains_on_windows_and_predicts_whole_images():
    model = build_model(load_config([*TINY, "model=unet", "model.encoder_channels=[8,16]", "model.segmenter_crop=16"]))
    seen = _seen_sizes(model)
    masks = torch.zeros(4, 1, 32, 32)
    masks[:2, 0, 20:23, 4:6] = 1
    loss = model.stages(LOSSES)[0].loss(torch.randn(4, 1, 32, 32), masks)
    assert torch.isfinite(loss) and seen == [torch.Size([4, 1, 16, 16])]
    model.sample(torch.randn(2, 1, 32, 32), samples=2)
    assert seen[-1] == torch.Size([2, 1, 32, 32])


def test_the_prior_stage_trains_on_windows_of_the_asked_side():
    model = build_model(load_config([*TINY, "model.prior=true", "model.segmenter_crop=16"]))
    seen = _seen_sizes(model.prior)
    prior = next(s for s in model.stages(LOSSES) if s.name == "prior")
    prior.loss(torch.randn(4, 1, 32, 32), (torch.rand(4, 1, 32, 32) > 0.7).float())
    assert seen == [torch.Size([4, 1, 16, 16])]


@pytest.mark.parametrize("side", [8, -16, 24])
def test_bad_window_sides_name_the_key(side):
    with pytest.raises(ConfigError, match="model.segmenter_crop.*multiple of 16"):
        load_config([*TINY, f"model.segmenter_crop={side}"])
