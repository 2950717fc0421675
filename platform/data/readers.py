"""Which reader handles which layout: the one place a `DataConfig` becomes sample references."""

from __future__ import annotations

from pathlib import Path
from platform.config_types import DataConfig
from platform.data.cvc import read_cvc_clinicdb
from platform.data.folder_pairs import read_folder_pairs
from platform.data.isic import read_isic2018
from platform.data.lidc_crops import read_lidc_crops
from platform.data.lidc_dicom import read_lidc_dicom
from platform.data.sample import SampleRef
from platform.data.synthetic import synthetic_refs

READERS = {
    "lidc_crops": read_lidc_crops,
    "lidc_dicom": read_lidc_dicom,
    "isic2018": read_isic2018,
    "cvc_clinicdb": read_cvc_clinicdb,
    "folder_pairs": read_folder_pairs,
}


def list_samples(config: DataConfig, base: Path = Path(".")) -> list[SampleRef]:
    """All samples of the dataset `config` describes, with `root` relative to `base`.

    Raises DatasetError naming the path when the folder is missing, malformed or empty."""
    if config.layout == "synthetic":
        return synthetic_refs(
            config.synthetic_count, config.image_size, config.annotators, config.channels, config.seed
        )
    return READERS[config.layout](base / config.root)
