"""The unit every reader produces: a lazily loaded image with one mask per annotator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from platform.errors import DatasetError

import numpy as np
from PIL import Image, UnidentifiedImageError

# Image (H×W×C uint8) and masks (A×H×W bool), A = number of annotators.
Loaded = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class SampleRef:
    """One image of a dataset, not yet read.

    `group` is the unit a split never cuts (a patient for LIDC, the image itself elsewhere).
    `load()` returns (image H×W×C uint8, masks A×H×W bool) and raises DatasetError naming
    the file when it is unreadable, empty or of a different size than its image.
    """

    id: str
    group: str
    source: str
    load: Callable[[], Loaded]


def read_image(path: Path) -> np.ndarray:
    """Read an 8-bit image as H×W×C uint8 (C = 1 or 3). Raises DatasetError naming `path`."""
    array = _read(path)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 4:  # RGBA: the alpha channel carries no anatomy
        array = array[..., :3]
    return _to_uint8(array, path)


def read_mask(path: Path, threshold: int = 127) -> np.ndarray:
    """Read a mask as H×W bool, foreground = value > threshold (JPEG masks need it).

    Raises DatasetError naming `path`."""
    array = _read(path)
    if array.ndim == 3:
        array = array.max(axis=-1)
    return _to_uint8(array, path) > threshold


def load_pair(image_path: Path, mask_paths: Sequence[Path], threshold: int = 127) -> Loaded:
    """Read an image and its annotator masks; every mask must match the image's size."""
    image = read_image(image_path)
    masks = np.stack([read_mask(p, threshold) for p in mask_paths])
    for path, mask in zip(mask_paths, masks, strict=True):
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                f"{path}: mask is {mask.shape[1]}×{mask.shape[0]} px but its image "
                f"{image_path} is {image.shape[1]}×{image.shape[0]} px"
            )
    return image, masks


def require_dir(path: Path, what: str) -> Path:
    """Return `path` if it is a folder, else raise DatasetError saying which `what` is missing."""
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} folder not found")
    return path


def require_nonempty(refs: list[SampleRef], root: Path, layout: str) -> list[SampleRef]:
    """Raise DatasetError when a reader found no image at all under `root`."""
    if not refs:
        raise DatasetError(f"{root}: no images found for layout '{layout}' (empty dataset)")
    return refs


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: file is empty")
    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        if path.suffix.lower() in {".tif", ".tiff"}:
            return _read_tiff(path)
        raise DatasetError(f"{path}: unreadable image ({exc})") from exc


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile  # only for TIFFs Pillow cannot open (e.g. some CVC-ClinicDB releases)

    try:
        return np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for broken files
        raise DatasetError(f"{path}: unreadable TIFF ({exc})") from exc


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.size == 0:
        raise DatasetError(f"{path}: image has no pixels")
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    low, high = float(array.min()), float(array.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return ((array.astype(np.float64) - low) * scale).astype(np.uint8)
