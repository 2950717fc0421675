"""The reader body shared by layouts of two folders, images and masks matched by file stem."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from platform.data.sample import SampleRef, load_pair, require_dir, require_nonempty
from platform.errors import DatasetError
from typing import Any

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
# JPEG-compressed masks carry ringing around the edge; 127 splits 0/255 cleanly.
MASK_THRESHOLD = 127


def read_paired_folders(
    root: Path,
    layout: str,
    image_dir: str,
    mask_dir: str,
    order: Callable[[Path], Any] = lambda p: p.name,
) -> list[SampleRef]:
    """One sample per image in `root/image_dir` with the same-stem mask in `root/mask_dir`.

    Raises DatasetError naming the path for a missing folder, an image without mask or no image."""
    require_dir(root, f"{layout} dataset")
    images, masks_dir = root / image_dir, root / mask_dir
    if not images.is_dir() or not masks_dir.is_dir():
        raise DatasetError(f"{root}: unknown layout for '{layout}': expected folders '{image_dir}/' and '{mask_dir}/'")
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    refs = []
    for image in sorted(images.iterdir(), key=order):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = masks.get(image.stem)
        if mask is None:
            raise DatasetError(f"{image}: image without mask in '{masks_dir}'")
        load = partial(load_pair, image, [mask], MASK_THRESHOLD)
        refs.append(SampleRef(image.stem, image.stem, str(image), load))
    return require_nonempty(refs, root, layout)
