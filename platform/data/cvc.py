"""CVC-ClinicDB layout: `Original/<id>.<ext>` + `Ground Truth/<id>.<ext>` (tif, png or jpg)."""

from __future__ import annotations

from pathlib import Path
from platform.data.paired import read_paired_folders
from platform.data.sample import SampleRef


def read_cvc_clinicdb(root: Path) -> list[SampleRef]:
    """List the frames of a CVC-ClinicDB folder in numeric order; masks are matched by file stem.

    Raises DatasetError for a missing folder, an image without mask or an empty dataset."""
    return read_paired_folders(root, "cvc_clinicdb", "Original", "Ground Truth", _natural_key)


def _natural_key(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)
