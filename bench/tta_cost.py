"""What `model.tta` costs at sampling: 16 masks of one image with and without the map averaged over
views, side by side on one trained run (the latent model's prior runs 8 times per image instead of
once; the denoiser's passes are unchanged). Best of `--repeats` over `--images` validation images,
one image at a time, 2 threads; nothing else may run meanwhile. Usage:

  python -m bench.tta_cost runs/lidc-medseglatdiff-f4c4-concat-seed0 [--images 8] [--repeats 3]"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from platform.build import load_trained
from platform.config import load_run_config
from platform.data.loader import PreparedSplit

import torch


def seconds_per_image(model: torch.nn.Module, images: torch.Tensor, steps: int) -> float:
    tic = time.perf_counter()
    for i in range(len(images)):
        model.sample(images[i : i + 1], 16, steps, torch.Generator().manual_seed(0))
    return (time.perf_counter() - tic) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    config = load_run_config(args.run / "config.yaml")
    model, _ = load_trained(args.run, config)
    split = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "val")
    images = torch.from_numpy(split.images[: args.images].copy())
    model.sample(images[:1], 2, 2)  # warm-up: allocator and kernels
    flag = "prior_tta" if hasattr(model, "prior_tta") else "tta"
    best: dict[tuple[bool, int], float] = {}
    for _ in range(args.repeats):
        for tta in (False, True):
            setattr(model, flag, tta)
            for steps in (10, 20):
                seconds = seconds_per_image(model, images, steps)
                best[tta, steps] = min(best.get((tta, steps), float("inf")), seconds)
    for (tta, steps), seconds in best.items():
        print(f"tta {str(tta).lower():5} · {steps} DDIM steps · 16 masks of one image in {seconds:.3f} s")
    print(
        "RESULT "
        + " ".join(f"s_16_masks_{steps}_steps_{'tta' if tta else 'plain'}={s:.3f}" for (tta, steps), s in best.items())
        + f" images={args.images}"
    )


if __name__ == "__main__":
    main()
