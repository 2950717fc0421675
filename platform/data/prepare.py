"""The DVC `prepare` stage: one dataset in its official layout → `prepared/<name>/`.

Output, written to a temporary folder and renamed into place (never half-written):
  manifest.parquet            one row per image: id, group, split, source, sizes, annotators, fg
  <split>/images.npy          N×C×S×S float32, normalised with the training split's statistics
  <split>/masks.npy           N×A×S×S uint8 (0/1), one mask per annotator
  stats.json                  channel mean/std, counts and the data config used
Usage: python -m platform.data.prepare DATASET [--params params.yaml] [--out prepared]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from platform.atomic import replace_directory
from platform.cli import run_command
from platform.config import load_config
from platform.config_types import DataConfig
from platform.data.readers import list_samples
from platform.data.sample import SampleRef
from platform.data.splits import SPLITS, split_groups
from platform.errors import UsageError

import numpy as np
import polars as pl
import yaml
from PIL import Image


def prepare_dataset(
    config: DataConfig,
    out_dir: Path,
    base: Path = Path("."),
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    only_split: str | None = None,
) -> pl.DataFrame:
    """Read, resize, split and normalise one dataset into `out_dir` (replaced atomically).

    `stats` (channel mean, std in [0, 1] units) replaces the training split's statistics, and
    `only_split` puts every image in that split: how an external folder is prepared for a run.
    Returns the manifest. Raises DatasetError naming the file for any bad input."""
    refs = list_samples(config, base)
    if only_split is not None:
        assignment = {r.group: only_split for r in refs}
    else:
        assignment = split_groups([r.group for r in refs], config.val_fraction, config.test_fraction, config.seed)
    rows, images, masks = [], {s: [] for s in SPLITS}, {s: [] for s in SPLITS}  # type: ignore[var-annotated]
    for ref in refs:
        image, mask, row = _resize_sample(ref, config)
        split = assignment[ref.group]
        rows.append({**row, "split": split, "index": len(images[split])})
        images[split].append(image)
        masks[split].append(mask)
    manifest = pl.DataFrame(rows).select(
        "id",
        "group",
        "split",
        "index",
        "source",
        "orig_height",
        "orig_width",
        "height",
        "width",
        "annotators",
        "annotators_marking",
        "foreground_fraction",
    )
    mean, std = stats if stats is not None else _channel_stats(images["train"] or images["val"] or images["test"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the prepared data is for every worker
    try:
        for split in SPLITS:
            (tmp / split).mkdir()
            shape = (0, config.channels, config.image_size, config.image_size)
            stack = np.stack(images[split]) if images[split] else np.zeros(shape, np.uint8)
            normalised = ((stack.astype(np.float32) / 255.0) - mean[:, None, None]) / std[:, None, None]
            np.save(tmp / split / "images.npy", normalised.astype(np.float32))
            mshape = (0, config.annotators, config.image_size, config.image_size)
            np.save(tmp / split / "masks.npy", np.stack(masks[split]) if masks[split] else np.zeros(mshape, np.uint8))
        manifest.write_parquet(tmp / "manifest.parquet")
        summary = {
            "mean": mean.tolist(),
            "std": std.tolist(),
            "config": asdict(config),
            "counts": {s: len(images[s]) for s in SPLITS},
        }
        (tmp / "stats.json").write_text(json.dumps(summary, indent=2))
        replace_directory(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _resize_sample(ref: SampleRef, config: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    image, masks = ref.load()
    size = config.image_size
    channels = image.shape[-1]
    if channels != config.channels:  # grey ↔ RGB: repeat or average, never fail on it
        image = np.repeat(image, 3, -1) if channels == 1 else image.mean(-1, keepdims=True).astype(np.uint8)
    resized = np.stack([_resize(image[..., c], size, Image.Resampling.BILINEAR) for c in range(config.channels)])
    # Area-averaged mask then threshold: a 1-pixel structure does not vanish as with nearest.
    soft = np.stack([_resize((m * 255).astype(np.uint8), size, Image.Resampling.BOX) for m in masks])
    binary = (soft >= 128).astype(np.uint8)
    padded = np.zeros((config.annotators, size, size), np.uint8)
    padded[: min(len(binary), config.annotators)] = binary[: config.annotators]
    row = {
        "id": ref.id,
        "group": ref.group,
        "source": ref.source,
        "orig_height": image.shape[0],
        "orig_width": image.shape[1],
        "height": size,
        "width": size,
        "annotators": config.annotators,
        "annotators_marking": int(padded.any(axis=(1, 2)).sum()),
        "foreground_fraction": float(padded.mean()),
    }
    return resized, padded, row


def _resize(channel: np.ndarray, size: int, method: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(channel).resize((size, size), method))


def _channel_stats(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not images:
        return np.zeros(1, np.float32), np.ones(1, np.float32)
    stack = np.stack(images).astype(np.float64) / 255.0
    mean, std = stack.mean(axis=(0, 2, 3)), stack.std(axis=(0, 2, 3))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def load_params(path: Path, dataset: str) -> dict:
    """params.yaml's `prepare:` section, then `prepare_overrides.<dataset>:` on top (DVC-facing)."""
    if not path.is_file():
        raise UsageError(f"{path}: params file not found")
    params = yaml.safe_load(path.read_text()) or {}
    section = params.get("prepare", {})
    specific = (params.get("prepare_overrides") or {}).get(dataset, {})
    if not isinstance(section, dict) or not isinstance(specific, dict):
        raise UsageError(f"{path}: 'prepare' and 'prepare_overrides.{dataset}' must be mappings")
    return {**section, **specific}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform.data.prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", help="a config name under platform/conf/data (lidc, ph2, isic, cvc, synthetic)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("prepared"))
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. data.image_size=64")
    args = parser.parse_intermixed_args(argv)

    def body(console) -> int:
        params = load_params(args.params, args.dataset) if args.params.exists() else {}
        overrides = [f"data={args.dataset}"] + [f"data.{k}={v}" for k, v in params.items()] + args.overrides
        config = load_config(overrides).data
        manifest = prepare_dataset(config, args.out / config.name)
        counts = manifest.group_by("split").len().sort("split").rows()
        print(f"prepared {config.name}: {manifest.height} images → {args.out / config.name} {dict(counts)}")
        return 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
