"""Folder pairs (Kvasir-SEG, PH2 as distributed here): `images/<id>.<ext>` + `masks/<id>.<ext>`."""

from __future__ import annotations

from pathlib import Path
from platform.data.paired import read_paired_folders
from platform.data.sample import SampleRef


def read_folder_pairs(root: Path) -> list[SampleRef]:
    """List `images/` with the same-stem file in `masks/`.

    Raises DatasetError for a missing folder, an image without mask or an empty dataset."""
    return read_paired_folders(root, "folder_pairs", "images", "masks")
