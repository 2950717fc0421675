from platform.data.summary import main, summarise_splits

import numpy as np
import polars as pl
import pytest


def _prepared(root, masks_by_split):
    """A prepared dataset folder holding the given N×A×H×W masks per split."""
    rows = []
    for split, masks in masks_by_split.items():
        folder = root / split
        folder.mkdir(parents=True)
        np.save(folder / "images.npy", np.zeros((len(masks), 1, *masks.shape[2:]), np.float32))
        np.save(folder / "masks.npy", masks.astype(np.uint8))
        for i, m in enumerate(masks):
            rows.append(
                {
                    "id": f"{split}-{i}",
                    "group": f"{split}-patient-{i // 2}",
                    "split": split,
                    "index": i,
                    "annotators_marking": int(m.reshape(len(m), -1).any(1).sum()),
                    "foreground_fraction": float(m.mean()),
                }
            )
    pl.DataFrame(rows).write_parquet(root / "manifest.parquet")


def test_split_agreement_by_hand(tmp_path, capsys):
    val = np.zeros((2, 3, 2, 2), np.uint8)
    val[0, :, 0, 0] = 1  # all three annotators
    val[0, 1, 0, 1] = 1  # one of three
    val[1, 2, 1, 1] = 1  # one of three: the majority vote of image 1 is empty
    train = np.zeros((3, 3, 2, 2), np.uint8)
    train[:, :2, 1, 0] = 1  # two of three on every image
    _prepared(tmp_path / "toy", {"train": train, "val": val})

    table = summarise_splits(tmp_path / "toy")
    assert table["split"].to_list() == ["train", "val"]  # no test split: no row
    row = table.row(1, named=True)
    assert (row["images"], row["groups"], row["mean_marking"]) == (2, 1, 2.0)
    assert row["empty_consensus"] == 0.5
    assert row["marked_by"] == pytest.approx([2 / 3, 0.0, 1 / 3])
    assert table.row(0, named=True)["marked_by"] == pytest.approx([0.0, 1.0, 0.0])
    assert table.row(0, named=True)["empty_consensus"] == 0.0

    assert main(["--prepared", str(tmp_path), "--splits", "toy"]) == 0
    out = capsys.readouterr().out
    assert "1/3" in out and "67 %" in out and "33 %" in out


def test_split_summary_of_a_missing_dataset_is_a_usage_error(tmp_path, capsys):
    assert main(["--prepared", str(tmp_path), "--splits", "lidc"]) == 2
    assert f"{tmp_path / 'lidc'}: no prepared dataset" in capsys.readouterr().out
