"""Which reader handles which layout: the one place a `DataConfig` becomes sample references."""

from __future__ import annotations

from pathlib import Path
from platform.config_types import DataConfig
from platform.data.layouts import READERS
from platform.data.sample import SampleRef
from platform.data.synthetic import synthetic_refs


def list_samples(config: DataConfig, base: Path = Path(".")) -> list[SampleRef]:
    """All samples of the dataset `config` describes, with `root` relative to `base`.

    Raises DatasetError naming the path when the folder is missing, malformed or empty."""
    if config.layout == "synthetic":
        return synthetic_refs(
            config.synthetic_count, config.image_size, config.annotators, config.channels, config.seed
        )
    return READERS[config.layout](base / config.root)
