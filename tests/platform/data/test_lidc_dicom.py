"""The pylidc reader on a DICOM series written here for a real scan's UIDs (LIDC-IDRI-0001)."""

from platform.data.lidc_dicom import import_pylidc, read_lidc_dicom
from platform.errors import DatasetError

import numpy as np
import pytest


def _write_series(folder, scan, ks, centre):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    yy, xx = np.mgrid[0:512, 0:512]
    disk = np.hypot(yy - centre[0], xx - centre[1]) < 8
    for k in ks:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.Modality = scan.patient_id, "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = scan.study_instance_uid, scan.series_instance_uid
        ds.ImagePositionPatient = [-166.0, -171.7, float(scan.slice_zvals[k])]
        ds.PixelSpacing = [scan.pixel_spacing, scan.pixel_spacing]
        ds.Rows = ds.Columns = 512
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.where(disk, 1024, 24).astype(np.int16).tobytes()  # nodule 0 HU, lung -1000 HU
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)
    (folder / "069.xml").write_text("<LidcReadMessage/>")  # LIDC downloads mix XML in


@pytest.fixture(scope="module")
def scan():
    pl = import_pylidc()
    return pl.query(pl.Scan).filter(pl.Scan.patient_id == "LIDC-IDRI-0001").first()


def test_reader_places_every_annotators_mask_in_the_crop(scan, tmp_path):
    cluster = scan.cluster_annotations(verbose=False)[0]
    ks = range(min(a.bbox_matrix()[2, 0] for a in cluster) - 2, max(a.bbox_matrix()[2, 1] for a in cluster) + 3)
    centre = np.mean([a.centroid[:2] for a in cluster], axis=0).round().astype(int)
    _write_series(tmp_path / "LIDC-IDRI-0001" / "series", scan, ks, centre)

    refs = read_lidc_dicom(tmp_path)
    assert refs and all(r.group == "LIDC-IDRI-0001" for r in refs)
    assert len(cluster) == 4
    loaded = [r.load() for r in refs]
    for image, masks in loaded:
        assert image.shape == (128, 128, 1) and masks.shape == (4, 128, 128)
        assert masks.any()  # only slices some annotator marked
        assert image[64, 64, 0] > 150 and image[0, 0, 0] < 10  # the nodule disk sits at the crop centre
    for a, ann in enumerate(cluster):  # every voxel of every annotation is in some crop, once
        assert sum(int(m[a].sum()) for _, m in loaded) == int(ann.boolean_mask().sum())


def test_reader_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_lidc_dicom(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("no DICOM here")
    with pytest.raises(DatasetError, match="empty dataset"):
        read_lidc_dicom(tmp_path)
