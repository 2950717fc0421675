import shutil
from platform.data.cvc import read_cvc_clinicdb
from platform.data.folder_pairs import read_folder_pairs
from platform.data.isic import read_isic2018
from platform.data.lidc_crops import read_lidc_crops
from platform.data.synthetic import synthetic_refs
from platform.errors import DatasetError

import numpy as np
import pytest
from PIL import Image


@pytest.mark.data
def test_lidc_crops_real_counts(data_root):
    refs = read_lidc_crops(data_root / "lidc-idri-crops")
    assert len(refs) == 1648
    assert len({r.group for r in refs}) == 100
    image, masks = refs[0].load()
    assert image.shape == (128, 128, 1) and image.dtype == np.uint8
    assert masks.shape == (4, 128, 128) and masks.dtype == bool
    # annotators disagree on real data: some slice has marks from some but not all four
    marks = [r.load()[1].any(axis=(1, 2)).sum() for r in refs[:60]]
    assert 0 < min(marks) < 4 or 0 < max(marks) < 4 or len(set(marks)) > 1


@pytest.mark.data
@pytest.mark.parametrize(
    ("reader", "folder", "count", "shape"),
    [
        (read_folder_pairs, "ph2", 160, None),
        (read_isic2018, "isic2018-sample", 5, (450, 600, 3)),
        (read_cvc_clinicdb, "cvc-clinicdb-sample", 20, (288, 384, 3)),
    ],
)
def test_single_annotator_readers_real_counts(data_root, reader, folder, count, shape):
    refs = reader(data_root / folder)
    assert len(refs) == count
    image, masks = refs[0].load()
    assert masks.shape == (1, *image.shape[:2])
    assert 0.0 < masks.mean() < 1.0
    if shape:
        assert image.shape == shape


@pytest.mark.data
def test_cvc_jpeg_masks_are_thresholded_to_two_values(data_root):
    ref = read_cvc_clinicdb(data_root / "cvc-clinicdb-sample")[0]
    raw = np.asarray(Image.open(ref.source.replace("Original", "Ground Truth")))
    _, masks = ref.load()
    assert len(np.unique(raw)) > 2  # JPEG ringing really is there
    assert np.array_equal(masks[0], (raw.max(-1) if raw.ndim == 3 else raw) > 127)


def test_synthetic_generator_is_seeded_and_has_disagreeing_annotators():
    a, b = synthetic_refs(3, size=64, annotators=3, seed=7), synthetic_refs(3, size=64, annotators=3, seed=7)
    image_a, masks_a = a[1].load()
    image_b, masks_b = b[1].load()
    assert np.array_equal(image_a, image_b) and np.array_equal(masks_a, masks_b)
    assert image_a.shape == (64, 64, 1) and masks_a.shape == (3, 64, 64)
    assert all(0.005 < m.mean() < 0.5 for m in masks_a)
    assert not np.array_equal(masks_a[0], masks_a[1])
    inside, outside = image_a[..., 0][masks_a[0]].mean(), image_a[..., 0][~masks_a.any(0)].mean()
    assert inside > outside + 20  # the lesion is visible
    assert a[0].group == a[1].group != a[2].group


def _pairs(tmp_path, n=3, size=(20, 30)):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(n):
        Image.fromarray(np.full((*size, 3), 100, np.uint8)).save(tmp_path / "images" / f"c{i}.png")
        mask = np.zeros(size, np.uint8)
        mask[5:10, 5:10] = 255
        Image.fromarray(mask).save(tmp_path / "masks" / f"c{i}.png")
    return tmp_path


def test_bad_input_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="nowhere.*not found"):
        read_folder_pairs(tmp_path / "nowhere")


def test_bad_input_unknown_layout(tmp_path):
    (tmp_path / "stuff").mkdir()
    for reader in (read_folder_pairs, read_isic2018, read_cvc_clinicdb, read_lidc_crops):
        with pytest.raises(DatasetError, match="unknown layout"):
            reader(tmp_path)


def test_bad_input_image_without_mask(tmp_path):
    root = _pairs(tmp_path)
    (root / "masks" / "c1.png").unlink()
    with pytest.raises(DatasetError, match=r"c1\.png: image without mask"):
        read_folder_pairs(root)


def test_bad_input_size_mismatch(tmp_path):
    root = _pairs(tmp_path)
    Image.fromarray(np.zeros((7, 7), np.uint8)).save(root / "masks" / "c0.png")
    with pytest.raises(DatasetError, match=r"c0\.png: mask is 7×7 px"):
        read_folder_pairs(root)[0].load()


def test_bad_input_unreadable_and_empty_files(tmp_path):
    root = _pairs(tmp_path)
    (root / "images" / "c0.png").write_bytes(b"not an image at all")
    (root / "images" / "c1.png").write_bytes(b"")
    refs = read_folder_pairs(root)
    with pytest.raises(DatasetError, match=r"c0\.png: unreadable image"):
        refs[0].load()
    with pytest.raises(DatasetError, match=r"c1\.png: file is empty"):
        refs[1].load()


def test_bad_input_empty_dataset(tmp_path):
    root = _pairs(tmp_path, n=0)
    with pytest.raises(DatasetError, match="empty dataset"):
        read_folder_pairs(root)


@pytest.mark.data
def test_lidc_slice_missing_one_annotator_mask(data_root, tmp_path):
    patient = tmp_path / "LIDC-IDRI-0001"
    shutil.copytree(data_root / "lidc-idri-crops" / "LIDC-IDRI-0001", patient)
    victim = next((patient / "nodule-0" / "mask-2").glob("*.png"))
    victim.unlink()
    with pytest.raises(DatasetError, match="mask-2.*is missing"):
        read_lidc_crops(tmp_path)
