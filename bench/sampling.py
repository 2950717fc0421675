"""Sampling speed, latent vs pixel-space diffusion, side by side in one run.

128 px images, N = 8 masks per image, 20 DDIM steps, each model at its default config
(platform/conf/model/*.yaml); weights are untrained (cost does not depend on them).
Usage (from the repository root): python -m bench.sampling [--images 2] [--repeats 3] [--threads 2]"""

from __future__ import annotations

import argparse
import time
from platform.build import build_model
from platform.config import load_config

import torch


def time_sampling(kind: str, images: int, samples: int, steps: int, repeats: int) -> float:
    """Best-of-`repeats` seconds per sampled mask."""
    config = load_config(["data=lidc", "data.image_size=128", f"model={kind}"])
    model = build_model(config).eval()
    batch = torch.randn(images, config.data.channels, 128, 128)
    model.sample(batch, 1, 2)  # warm-up: allocator and kernels
    best = float("inf")
    for _ in range(repeats):
        tic = time.perf_counter()
        model.sample(batch, samples, steps, torch.Generator().manual_seed(0))
        best = min(best, time.perf_counter() - tic)
    return best / (images * samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    latent = time_sampling("medseglatdiff", args.images, args.samples, args.steps, args.repeats)
    pixel = time_sampling("pixel_diffusion", args.images, args.samples, args.steps, args.repeats)
    print(f"{'model':<16}{'ms per mask':>14}")
    print(f"{'latent (f=4)':<16}{1000 * latent:>14.1f}")
    print(f"{'pixel':<16}{1000 * pixel:>14.1f}")
    print(
        f"RESULT speedup={pixel / latent:.2f} latent_ms_per_mask={1000 * latent:.1f} "
        f"pixel_ms_per_mask={1000 * pixel:.1f} images={args.images} samples={args.samples} steps={args.steps}"
    )


if __name__ == "__main__":
    main()
