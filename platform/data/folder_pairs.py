"""Folder pairs (Kvasir-SEG, PH2 as distributed here): `images/<id>.<ext>` + `masks/<id>.<ext>`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from platform.data.cvc import IMAGE_SUFFIXES, MASK_THRESHOLD
from platform.data.sample import SampleRef, load_pair, require_dir, require_nonempty
from platform.errors import DatasetError


def read_folder_pairs(root: Path) -> list[SampleRef]:
    """List `images/` with the same-stem file in `masks/`.

    Raises DatasetError for a missing folder, an image without mask or an empty dataset."""
    require_dir(root, "folder-pairs dataset")
    images, masks_dir = root / "images", root / "masks"
    if not images.is_dir() or not masks_dir.is_dir():
        raise DatasetError(f"{root}: unknown layout for 'folder_pairs': expected folders 'images/' and 'masks/'")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    refs = []
    for image in sorted(images.iterdir()):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = masks.get(image.stem)
        if mask is None:
            raise DatasetError(f"{image}: image without mask in '{masks_dir}'")
        load = partial(load_pair, image, [mask], MASK_THRESHOLD)
        refs.append(SampleRef(image.stem, image.stem, str(image), load))
    return require_nonempty(refs, root, "folder_pairs")
