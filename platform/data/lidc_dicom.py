"""LIDC-IDRI from DICOM through pylidc: per-annotator nodule masks, 2D crops around each nodule.

pylidc's bundled database holds every radiologist's contours; we read the CT pixels from
DICOM files ourselves (any folder structure) and match slices to the database by their
z position, so a partial series (only the slices around the nodules) works too."""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from platform.data.sample import Loaded, SampleRef, require_dir, require_nonempty
from platform.errors import DatasetError
from typing import Any

import numpy as np

# Lung window: what the Probabilistic U-Net crops show, and where nodules have contrast.
HU_WINDOW = (-1000.0, 400.0)


def import_pylidc() -> Any:
    """Import pylidc 0.2.3, which still uses the `np.int`/`np.float` aliases NumPy removed.

    Only those two are restored: re-adding others (e.g. a custom `np.bool`) breaks numpy.ma."""
    for alias, builtin in (("int", int), ("float", float)):
        if alias not in np.__dict__:
            setattr(np, alias, builtin)
    with warnings.catch_warnings():  # its pkg_resources/SQLAlchemy deprecations are not ours
        warnings.simplefilter("ignore")
        import pylidc

    return pylidc


def read_lidc_dicom(root: Path, crop_size: int = 128, annotators: int = 4) -> list[SampleRef]:
    """List one sample per (nodule cluster, slice that any annotator marked) of every LIDC
    series found under `root`; `group` is the patient id.

    Raises DatasetError for a missing folder or when no file under `root` is a DICOM slice
    of a series in pylidc's database."""
    import pydicom

    require_dir(root, "LIDC-IDRI DICOM dataset")
    pl = import_pylidc()
    series: dict[str, dict[float, Path]] = defaultdict(dict)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            uid, z = str(header.SeriesInstanceUID), float(header.ImagePositionPatient[2])
        except Exception:  # not DICOM, or not an image slice: LIDC downloads hold XML too
            continue
        series[uid][round(z, 2)] = path
    refs: list[SampleRef] = []
    for uid, slices in sorted(series.items()):
        scan = pl.query(pl.Scan).filter(pl.Scan.series_instance_uid == uid).first()
        if scan is not None:
            refs.extend(_ScanCrops(scan, slices, crop_size, annotators).refs())
    return require_nonempty(refs, root, "lidc_dicom")


@dataclass
class _ScanCrops:
    """The crops of one scan; caches each cluster's masks so slices share one rasterisation."""

    scan: Any
    slices: dict[float, Path]
    crop_size: int
    annotators: int
    _masks: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)

    def refs(self) -> list[SampleRef]:
        refs = []
        zvals = self.scan.slice_zvals
        for c, cluster in enumerate(self.scan.cluster_annotations(verbose=False)):
            for k in sorted(self._cluster_masks(c, cluster)):
                if round(float(zvals[k]), 2) not in self.slices:
                    continue  # slice not on disk: a partial series
                sample_id = f"{self.scan.patient_id}/nodule-{c}/slice-{k}"
                load = partial(self._load, c, cluster, k)
                source = str(self.slices[round(float(zvals[k]), 2)])
                refs.append(SampleRef(sample_id, self.scan.patient_id, source, load))
        return refs

    def _cluster_masks(self, c: int, cluster: list[Any]) -> dict[int, np.ndarray]:
        """Slice index → annotators×512×512 bool, each annotation's boolean_mask in its bbox."""
        if c not in self._masks:
            per_slice: dict[int, np.ndarray] = {}
            for a, ann in enumerate(cluster[: self.annotators]):
                bbox = ann.bbox_matrix()
                mask = ann.boolean_mask(bbox=bbox)
                for dk in range(mask.shape[2]):
                    if mask[:, :, dk].any():
                        k = int(bbox[2, 0]) + dk
                        full = per_slice.setdefault(k, np.zeros((self.annotators, 512, 512), bool))
                        i0, j0 = int(bbox[0, 0]), int(bbox[1, 0])
                        full[a, i0 : i0 + mask.shape[0], j0 : j0 + mask.shape[1]] |= mask[:, :, dk]
            self._masks[c] = per_slice
        return self._masks[c]

    def _load(self, c: int, cluster: list[Any], k: int) -> Loaded:
        import pydicom

        path = self.slices[round(float(self.scan.slice_zvals[k]), 2)]
        try:
            ds = pydicom.dcmread(path)
            hu = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        except Exception as exc:
            raise DatasetError(f"{path}: unreadable DICOM slice ({exc})") from exc
        low, high = HU_WINDOW
        image = ((np.clip(hu, low, high) - low) / (high - low) * 255).astype(np.uint8)
        masks = self._cluster_masks(c, cluster)[k]
        if image.shape != masks.shape[1:]:
            raise DatasetError(f"{path}: slice is {image.shape}, LIDC contours expect {masks.shape[1:]}")
        centre = np.mean([ann.centroid[:2] for ann in cluster], axis=0).round().astype(int)
        half = self.crop_size // 2
        i0 = int(np.clip(centre[0] - half, 0, image.shape[0] - self.crop_size))
        j0 = int(np.clip(centre[1] - half, 0, image.shape[1] - self.crop_size))
        window = (slice(i0, i0 + self.crop_size), slice(j0, j0 + self.crop_size))
        return image[window][..., None], masks[(slice(None), *window)]
