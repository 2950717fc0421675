"""A trained run on a folder it never saw: every image of the folder, in any supported layout.

Images are resized as `prepare` does and normalised with the statistics of the run's training
data (not the folder's own); no split, all images count. The folder is prepared into a temporary
folder beside the output and removed afterwards."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from platform.config_types import Config
from platform.data.layouts import LAYOUTS
from platform.data.prepare import prepare_dataset
from platform.data.readers import list_samples
from platform.errors import DatasetError, UsageError

import numpy as np

EXTERNAL_SPLIT = "test"


def training_stats(run_dir: Path, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Channel mean and std of the run's training data: the copy kept in the run folder, else the
    prepared dataset it was trained on."""
    for path in (run_dir / "data_stats.json", Path(config.train.prepared_dir) / config.data.name / "stats.json"):
        if path.is_file():
            stats = json.loads(path.read_text())
            return np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
    raise UsageError(f"{run_dir}: no data_stats.json and no prepared {config.data.name} statistics to normalise with")


def external_config(config: Config, folder: Path, layout: str) -> Config:
    """The run's config with its data replaced by `folder` in `layout` (same size, channels, annotators)."""
    if layout not in LAYOUTS:
        raise UsageError(f"layout={layout!r}: not one of {', '.join(LAYOUTS)}")
    if layout == "synthetic":
        raise UsageError("layout=synthetic: an external folder needs a file layout")
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    data = dataclasses.replace(config.data, name=f"external-{folder.name}", layout=layout, root=str(folder.resolve()))
    return dataclasses.replace(config, data=data)


def check_annotators(config: Config) -> int:
    """The number of images in the folder; raises UsageError when none is readable or when its
    masks carry another number of annotators than the run was trained with."""
    try:
        refs = list_samples(config.data)
        if not refs:
            raise DatasetError(f"{config.data.root}: no image/mask pair found")
        _, masks = refs[0].load()
    except DatasetError as exc:
        raise UsageError(
            f"{config.data.root}: no readable image/mask pair for layout {config.data.layout} ({exc})"
        ) from None
    if len(masks) != config.data.annotators:
        raise UsageError(
            f"{refs[0].source}: {len(masks)} annotator mask(s) but the run was trained with "
            f"{config.data.annotators} (data.annotators)"
        )
    return len(refs)


def prepare_external(
    config: Config, run_dir: Path, out: Path, stats: tuple[np.ndarray, np.ndarray]
) -> tuple[Config, Path]:
    """Prepare the folder `config` points at (see `external_config`) into a temporary folder beside
    `out`, normalised with `stats` (`training_stats` of the run); returns the config that points at
    it and that folder (the caller removes it)."""
    check_annotators(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.prepared.", dir=out.parent))
    try:
        prepare_dataset(config.data, scratch / config.data.name, stats=stats, only_split=EXTERNAL_SPLIT)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    train = dataclasses.replace(config.train, prepared_dir=str(scratch))
    return dataclasses.replace(config, train=train), scratch
