"""ISIC-2018 Task 1 layout: `*_Input/ISIC_xxxxxxx.jpg` + `*_GroundTruth/ISIC_xxxxxxx_segmentation.png`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from platform.data.sample import SampleRef, load_pair, require_dir, require_nonempty
from platform.errors import DatasetError


def read_isic2018(root: Path) -> list[SampleRef]:
    """List the image/mask pairs of an ISIC-2018 Task 1 folder (training, validation or test).

    Accepts the official folder names (`ISIC2018_Task1-2_Training_Input`,
    `ISIC2018_Task1_Training_GroundTruth`, and the Validation/Test variants).
    Raises DatasetError for a missing folder, an image without mask or an empty dataset."""
    require_dir(root, "ISIC-2018 dataset")
    inputs = sorted(p for p in root.glob("ISIC2018_Task1*_Input") if p.is_dir())
    truths = sorted(p for p in root.glob("ISIC2018_Task1*_GroundTruth") if p.is_dir())
    if not inputs or not truths:
        raise DatasetError(
            f"{root}: unknown layout for 'isic2018': expected folders "
            "ISIC2018_Task1-2_<Split>_Input and ISIC2018_Task1_<Split>_GroundTruth"
        )
    masks = {p.name.removesuffix("_segmentation.png"): p for t in truths for p in t.glob("*.png")}
    refs = []
    for image in sorted(p for d in inputs for p in d.glob("ISIC_*.jpg")):
        mask = masks.get(image.stem)
        if mask is None:
            raise DatasetError(f"{image}: image without mask ({image.stem}_segmentation.png)")
        refs.append(SampleRef(image.stem, image.stem, str(image), partial(load_pair, image, [mask])))
    return require_nonempty(refs, root, "isic2018")
