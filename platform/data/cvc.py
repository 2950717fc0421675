"""CVC-ClinicDB layout: `Original/<id>.<ext>` + `Ground Truth/<id>.<ext>` (tif, png or jpg)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from platform.data.sample import SampleRef, load_pair, require_dir, require_nonempty
from platform.errors import DatasetError

IMAGE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
# JPEG-compressed masks carry ringing around the edge; 127 splits 0/255 cleanly.
MASK_THRESHOLD = 127


def read_cvc_clinicdb(root: Path) -> list[SampleRef]:
    """List the frames of a CVC-ClinicDB folder. Masks are matched by file stem.

    Raises DatasetError for a missing folder, an image without mask or an empty dataset."""
    require_dir(root, "CVC-ClinicDB dataset")
    originals, truths = root / "Original", root / "Ground Truth"
    if not originals.is_dir() or not truths.is_dir():
        raise DatasetError(
            f"{root}: unknown layout for 'cvc_clinicdb': expected folders 'Original/' and 'Ground Truth/'"
        )
    masks = {p.stem: p for p in truths.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    refs = []
    for image in sorted(originals.iterdir(), key=_natural_key):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = masks.get(image.stem)
        if mask is None:
            raise DatasetError(f"{image}: image without mask in '{truths}'")
        load = partial(load_pair, image, [mask], MASK_THRESHOLD)
        refs.append(SampleRef(image.stem, image.stem, str(image), load))
    return require_nonempty(refs, root, "cvc_clinicdb")


def _natural_key(path: Path) -> tuple[int, str]:
    return (int(path.stem), "") if path.stem.isdigit() else (1 << 30, path.stem)
