"""The one registry of on-disk dataset layouts: layout name → reader (folder → sample references).

`data.layout` is validated against it; `synthetic` is generated, not read, so it has no reader."""

from __future__ import annotations

from platform.data.cvc import read_cvc_clinicdb
from platform.data.folder_pairs import read_folder_pairs
from platform.data.isic import read_isic2018
from platform.data.lidc_crops import read_lidc_crops
from platform.data.lidc_dicom import read_lidc_dicom

READERS = {
    "lidc_crops": read_lidc_crops,
    "lidc_dicom": read_lidc_dicom,
    "isic2018": read_isic2018,
    "cvc_clinicdb": read_cvc_clinicdb,
    "folder_pairs": read_folder_pairs,
}
LAYOUTS = (*READERS, "synthetic")
