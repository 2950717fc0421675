"""Training throughput (images/s) of each model and stage on 2 CPU threads, side by side.

128 px, batch 16, the default model configs; each measured over `--steps` optimizer steps
after 2 warm-up steps, on random LIDC-shaped data (throughput does not depend on content).
Usage (from the repository root): python -m bench.throughput [--steps 10] [--threads 2]"""

from __future__ import annotations

import argparse
import time
from platform.build import build_model
from platform.config import load_config

import torch

from models.autoencoder import kl_divergence
from models.losses import SegmentationLoss


def measure(kind: str, stage: str, steps: int, batch: int) -> float:
    model = build_model(load_config(["data=lidc", f"model={kind}"])).train()
    images = torch.randn(batch, 1, 128, 128)
    masks = (torch.rand(batch, 1, 128, 128) > 0.95).float()
    loss_fn = SegmentationLoss(50.0)
    if stage == "autoencoder":
        params = model.codec.parameters()

        def step() -> torch.Tensor:
            logits, mu, sigma = model.codec(masks)
            return loss_fn(logits, masks) + 1e-6 * kl_divergence(mu, sigma)
    elif stage == "segmenter":
        params = model.parameters()

        def step() -> torch.Tensor:
            return loss_fn(model(images), masks)
    else:
        params = model.net.parameters()

        def step() -> torch.Tensor:
            return model.diffusion_loss(images, masks)

    optimizer = torch.optim.AdamW(params, lr=1e-4)
    for i in range(steps + 2):
        if i == 2:
            tic = time.perf_counter()
        loss = step()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [
        ("medseglatdiff", "autoencoder"),
        ("medseglatdiff", "diffusion"),
        ("pixel_diffusion", "diffusion"),
        ("unet", "segmenter"),
    ]
    rates = {f"{kind}_{stage}": measure(kind, stage, args.steps, args.batch) for kind, stage in cases}
    print(f"{'model / stage':<32}{'images/s':>10}")
    for key, rate in rates.items():
        print(f"{key:<32}{rate:>10.1f}")
    latent = rates["medseglatdiff_diffusion"] / rates["pixel_diffusion_diffusion"]
    print("RESULT " + " ".join(f"{k}={v:.1f}" for k, v in rates.items()) + f" latent_vs_pixel_train={latent:.2f}")


if __name__ == "__main__":
    main()
