"""LIDC-IDRI 2D crops (Probabilistic U-Net layout):
`LIDC-IDRI-XXXX/nodule-N/images/slice-K.png` + `.../mask-{0..3}/slice-K.png`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from platform.data.sample import SampleRef, load_pair, require_dir, require_nonempty
from platform.errors import DatasetError

ANNOTATORS = 4


def read_lidc_crops(root: Path) -> list[SampleRef]:
    """List every slice with its four annotator masks; `group` is the patient id.

    An annotator who did not mark a slice has an empty mask file, which is kept: the
    disagreement is the signal. Raises DatasetError for a missing folder, a slice
    without its four masks or an empty dataset."""
    require_dir(root, "LIDC-IDRI crops dataset")
    patients = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("LIDC-IDRI-"))
    if not patients:
        raise DatasetError(f"{root}: unknown layout for 'lidc_crops': expected LIDC-IDRI-XXXX/nodule-N/images/ folders")
    refs = []
    for patient in patients:
        for nodule in sorted(patient.glob("nodule-*")):
            for image in sorted(require_dir(nodule / "images", "images").glob("*.png"), key=_slice_key):
                masks = [nodule / f"mask-{a}" / image.name for a in range(ANNOTATORS)]
                missing = [m for m in masks if not m.is_file()]
                if missing:
                    raise DatasetError(f"{image}: image without mask ({missing[0]} is missing)")
                sample_id = f"{patient.name}/{nodule.name}/{image.stem}"
                refs.append(SampleRef(sample_id, patient.name, str(image), partial(load_pair, image, masks)))
    return require_nonempty(refs, root, "lidc_crops")


def _slice_key(path: Path) -> tuple[int, str]:
    number = path.stem.rsplit("-", 1)[-1]
    return (int(number), "") if number.isdigit() else (1 << 30, path.stem)
