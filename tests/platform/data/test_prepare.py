import json
import subprocess
import sys
from platform.config import load_config
from platform.data.prepare import prepare_dataset
from platform.data.splits import split_groups
from platform.errors import DatasetError

import numpy as np
import polars as pl
import pytest
from PIL import Image

from tests.conftest import REPO


def _synthetic(count=24, size=32):
    return load_config(["data=synthetic", f"data.synthetic_count={count}", f"data.image_size={size}"]).data


def test_prepare_writes_normalised_arrays_and_manifest(tmp_path):
    manifest = prepare_dataset(_synthetic(), tmp_path / "synthetic")
    out = tmp_path / "synthetic"
    assert manifest.height == 24 and set(manifest["split"]) == {"train", "val", "test"}
    train = np.load(out / "train" / "images.npy", mmap_mode="r")
    masks = np.load(out / "train" / "masks.npy", mmap_mode="r")
    assert train.shape == ((manifest["split"] == "train").sum(), 1, 32, 32) and train.dtype == np.float32
    assert masks.shape == (train.shape[0], 3, 32, 32) and set(np.unique(masks)) <= {0, 1}
    assert abs(float(train.mean())) < 1e-3 and abs(float(train.std()) - 1) < 1e-2  # train stats
    stats = json.loads((out / "stats.json").read_text())
    assert stats["counts"]["train"] == train.shape[0]
    row = manifest.filter(pl.col("split") == "train").sort("index").row(0, named=True)
    assert row["foreground_fraction"] == pytest.approx(float(masks[0].mean()))


def test_prepare_is_idempotent(tmp_path):
    first = prepare_dataset(_synthetic(), tmp_path / "a")
    second = prepare_dataset(_synthetic(), tmp_path / "b")
    assert first.equals(second)
    for split in ("train", "val", "test"):
        for name in ("images.npy", "masks.npy"):
            assert np.array_equal(np.load(tmp_path / "a" / split / name), np.load(tmp_path / "b" / split / name))


def test_splits_are_seeded_and_group_disjoint():
    groups = [f"p{i // 3}" for i in range(90)]
    a, b = split_groups(groups, 0.2, 0.2, seed=1), split_groups(groups, 0.2, 0.2, seed=1)
    assert a == b and split_groups(groups, 0.2, 0.2, seed=2) != a
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"train": 18, "val": 6, "test": 6}


@pytest.mark.data
def test_lidc_prepare_splits_by_patient(data_root, tmp_path):
    config = load_config(["data=lidc", f"data.root={data_root / 'lidc-idri-crops'}", "data.image_size=64"]).data
    manifest = prepare_dataset(config, tmp_path / "lidc")
    per_patient = manifest.group_by("group").agg(pl.col("split").n_unique().alias("n"))
    assert per_patient["n"].max() == 1  # no patient in two splits
    assert manifest.height == 1648 and manifest["group"].n_unique() == 100
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert manifest["annotators"].unique().to_list() == [4]


def test_failed_prepare_leaves_previous_output_untouched(tmp_path):
    root = tmp_path / "pairs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 50 * i, np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.eye(16, dtype=np.uint8) * 255).save(root / "masks" / f"{i}.png")
    config = load_config(["data=ph2", f"data.root={root}", "data.image_size=16"]).data
    out = tmp_path / "prepared" / "ph2"
    prepare_dataset(config, out)
    before = (out / "manifest.parquet").read_bytes()
    (root / "images" / "3.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DatasetError, match=r"3\.png"):
        prepare_dataset(config, out)
    assert (out / "manifest.parquet").read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["ph2"]  # no temporary folder left


def test_prepare_command_exit_status_2_on_bad_dataset(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "platform.data.prepare", "ph2", "--out", str(tmp_path), f"data.root={tmp_path}/none"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "none: folder_pairs dataset folder not found" in result.stdout
