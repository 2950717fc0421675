"""A tiny overfit on four synthetic images: the whole latent pipeline must learn, not just lower a loss."""

from platform.data.synthetic import make_sample
from platform.metrics import dice

import numpy as np
import torch

from models.autoencoder import MaskAutoencoder, kl_divergence, latent_scale_factor
from models.denoiser import ConcatDenoiser, ImageEncoder
from models.diffusion import make_schedulers
from models.losses import SegmentationLoss
from models.medseglatdiff import MedSegLatDiff


def test_four_image_overfit_autoencoder_diffusion_and_sampling():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    samples = [make_sample(32, 1, 1, 0, i) for i in range(4)]
    images = torch.tensor(np.stack([s[0] for s in samples])).permute(0, 3, 1, 2).float() / 255
    images = (images - images.mean()) / images.std()
    masks = torch.tensor(np.stack([s[1] for s in samples])).float()

    autoencoder = MaskAutoencoder([16, 32, 32], 4)
    optimizer = torch.optim.Adam(autoencoder.parameters(), 3e-3)
    loss_fn = SegmentationLoss(5.0)
    for _ in range(150):
        logits, mu, sigma = autoencoder(masks)
        loss = loss_fn(logits, masks) + 1e-6 * kl_divergence(mu, sigma)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    autoencoder.eval().requires_grad_(False)
    with torch.no_grad():
        reconstruction = autoencoder.decode(autoencoder.encode(masks)[0]) > 0
    assert dice(reconstruction, masks).min() > 0.9

    train, sample = make_schedulers(1000, "scaled_linear_beta", "epsilon")
    model = MedSegLatDiff(
        autoencoder,
        ImageEncoder(1, [16, 32, 32], 16, 4),
        ConcatDenoiser(4, 16, [32, 64, 64], [False, False, True]),
        train,
        sample,
        latent_scale_factor(autoencoder, masks),
        ema_decay=0.99,
    )
    optimizer = torch.optim.Adam(model.net.parameters(), 2e-3)
    losses = []
    for _ in range(400):
        loss = model.diffusion_loss(images.repeat(4, 1, 1, 1), masks.repeat(4, 1, 1, 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.update_ema()
        losses.append(loss.item())
    assert np.mean(losses[-20:]) < 0.25 * np.mean(losses[:20])

    ensemble = model.sample(images, 4, 20, torch.Generator().manual_seed(0))
    assert ensemble.masks.any()  # the clip_sample trap decodes everything empty
    assert dice(ensemble.mean >= 0.5, masks).mean() > 0.8
