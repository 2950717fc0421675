"""External validation: a trained run on a folder it never saw, in any layout, with the run's statistics."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from platform.evaluate import evaluate_run
from platform.train import run as train_run

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from tests.conftest import REPO, copy_lidc_patients


@pytest.fixture
def lidc_like_run(tiny):
    """A tiny run trained on 4-annotator synthetic data (1 channel, like LIDC crops)."""
    summary = train_run(tiny("data.annotators=4"), Console(quiet=True))
    return Path(summary["run_dir"])


@pytest.fixture
def lidc_folder(tmp_path, data_root):
    """Three patients of the pulled LIDC crops, copied to a folder of their own."""
    return copy_lidc_patients(data_root, tmp_path / "unseen-lidc", 3)


def test_every_image_of_the_folder_is_evaluated_with_the_runs_statistics(lidc_like_run, lidc_folder):
    summary = evaluate_run(
        lidc_like_run,
        {"external": str(lidc_folder), "layout": "lidc_crops", "samples": "2", "steps": "2"},
        [],
        Console(quiet=True),
    )
    out = lidc_like_run / "eval-external-unseen-lidc"
    images = pl.read_parquet(out / "images.parquet")
    pngs = sorted(lidc_folder.glob("*/nodule-*/images/*.png"))
    assert images.height == len(pngs) == summary["images"][0]  # no split: every image counts
    assert set(images["source"]) == {str(p.resolve()) for p in pngs}
    assert set(images["group"]) == {p.name for p in lidc_folder.iterdir()}
    for name in ("summary.parquet", "reliability.parquet", "reliability.png", "panels.png"):
        assert (out / name).is_file(), name
    assert not list(lidc_like_run.glob(".eval-external-*"))  # the scratch preparation is gone


def test_the_runs_statistics_normalise_the_folder(lidc_like_run, lidc_folder, tmp_path):
    """The folder is normalised with the run's mean/std, not its own: shifting the stored training
    statistics shifts what the model sees."""
    from platform.config import load_run_config
    from platform.evaluation.external import external_config, prepare_external, training_stats

    run_config = load_run_config(lidc_like_run / "config.yaml", [])
    config = external_config(run_config, lidc_folder, "lidc_crops")
    arrays = []
    for mean in (0.2, 0.7):
        (lidc_like_run / "data_stats.json").write_text(json.dumps({"mean": [mean], "std": [0.25]}))
        stats = training_stats(lidc_like_run, run_config)
        prepared, scratch = prepare_external(config, lidc_like_run, tmp_path / f"out-{mean}", stats)
        arrays.append(np.load(Path(prepared.train.prepared_dir) / config.data.name / "test" / "images.npy"))
        shutil.rmtree(scratch)
    assert np.allclose(arrays[0] - arrays[1], (0.7 - 0.2) / 0.25, atol=1e-4)


def test_a_run_without_data_stats_uses_its_prepared_datasets_statistics(lidc_like_run, lidc_folder):
    """Runs trained before data_stats.json existed: the prepared dataset named in their config."""
    (lidc_like_run / "data_stats.json").unlink()
    options = {"external": str(lidc_folder), "layout": "lidc_crops", "samples": "1", "steps": "1", "images": "4"}
    summary = evaluate_run(lidc_like_run, options, [], Console(quiet=True))
    assert summary["images"][0] == 4


@pytest.mark.parametrize(
    "options,message",
    [
        ({"external": "/no/such/folder", "layout": "lidc_crops"}, r"/no/such/folder: not a folder"),
        ({"external": "{folder}", "layout": "dicom"}, r"layout='dicom': not one of"),
        ({"external": "{folder}"}, r"needs layout="),
        ({"external": "{empty}", "layout": "lidc_crops"}, r"no readable image/mask pair"),
        ({"external": "{ph2}", "layout": "folder_pairs"}, r"1 annotator mask\(s\) but the run was trained with 4"),
    ],
)
def test_bad_input_is_one_line_exit_2(lidc_like_run, lidc_folder, data_root, tmp_path, options, message):
    (tmp_path / "empty").mkdir()
    values = {"folder": str(lidc_folder), "empty": str(tmp_path / "empty"), "ph2": str(data_root / "ph2")}
    args = [f"run={lidc_like_run}", *(f"{k}={v.format(**values)}" for k, v in options.items())]
    before = sorted(p.name for p in lidc_like_run.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "platform.evaluate", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    import re

    assert re.search(message, lines[0]), lines[0]
    assert sorted(p.name for p in lidc_like_run.iterdir()) == before
