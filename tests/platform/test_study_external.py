"""`platform.study evaluate`: a study's best trials on a folder none of them saw, the `external`
table, its SQL and the report's internal-vs-external section; bad input exits 2 writing nothing."""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from platform.config import config_to_yaml
from platform.evaluate import evaluate_run
from platform.results import query, trial_frame, write_table
from platform.spec import load_spec
from platform.train import run as train_run

import polars as pl
import pytest
from rich.console import Console

from tests.conftest import REPO, copy_lidc_patients, user_env, write_spec


def _study_dir(tmp_path: Path) -> Path:
    study_dir = tmp_path / "results" / "ext"
    study_dir.mkdir(parents=True)
    write_spec(study_dir / "spec.yaml", name="ext")
    return study_dir


def _trial_rows(study_dir: Path, summary: dict, internal: pl.DataFrame | None) -> None:
    """Rows of two completed trials, t-best and t-worse (same run, first objective dice 0.9 / 0.1)."""
    spec = load_spec(study_dir / "spec.yaml")
    for trial, dice in (("t-best", 0.9), ("t-worse", 0.1)):
        row = summary | {"study": "ext", "trial_id": trial, "status": "completed", "dice": dice}
        row |= {"p_wce_weight": 5.0, "p_conditioning": "concat"}
        write_table(trial_frame(row, spec.parameter_columns()), study_dir / "trials" / f"{trial}.parquet")
        if internal is not None:
            images = internal.with_columns(pl.lit("ext").alias("study"), pl.lit(trial).alias("trial_id"))
            write_table(images, study_dir / "images" / f"{trial}.parquet")


@pytest.fixture
def study(tiny, tmp_path, user_home):
    """results/ext as a study leaves it: a trained 4-annotator synthetic run as two completed
    trials with their rows and internal per-image rows; and a user's environment."""
    study_dir = _study_dir(tmp_path)
    config = tiny("data.annotators=4", f"train.runs_dir={study_dir}/runs", "train.run_name=t-best")
    run_dir = Path(train_run(config, Console(quiet=True))["run_dir"])
    summary = evaluate_run(run_dir, {"split": "val", "samples": "2", "steps": "2"}, [], Console(quiet=True))
    shutil.copytree(run_dir, study_dir / "runs" / "t-worse")
    _trial_rows(study_dir, summary.row(0, named=True), pl.read_parquet(run_dir / "eval-val" / "images.parquet"))
    return study_dir, user_env(user_home, STUDY_RESULTS=str(study_dir.parent), STUDY_DASHBOARD_PORT="8281")


@pytest.fixture
def untrained_study(tiny, tmp_path, user_home):
    """results/ext with the rows and run folders of two trials but no real checkpoint: enough for
    every check `evaluate` makes before it starts Ray."""
    study_dir = _study_dir(tmp_path)
    for trial in ("t-best", "t-worse"):
        (study_dir / "runs" / trial).mkdir(parents=True)
        (study_dir / "runs" / trial / "config.yaml").write_text(config_to_yaml(tiny("data.annotators=4")))
        (study_dir / "runs" / trial / "checkpoint.pt").write_bytes(b"")
    _trial_rows(study_dir, {"dice": 0.5}, None)
    return study_dir, user_env(user_home, STUDY_RESULTS=str(study_dir.parent), STUDY_DASHBOARD_PORT="8281")


@pytest.fixture
def lidc_folder(tmp_path, data_root):
    return copy_lidc_patients(data_root, tmp_path / "unseen-lidc", 2)


def _study(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform.study", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_best_trials_on_an_external_folder(study, lidc_folder):
    study_dir, env = study
    result = _study(
        ["evaluate", "ext", "--external", str(lidc_folder), "--layout", "lidc_crops", "--top", "1"]
        + ["--samples", "2", "--steps", "2"],
        env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "internal (val) → external" in result.stdout
    shards = sorted(p.name for p in (study_dir / "external").iterdir())
    assert shards == ["t-best--unseen-lidc.parquet"]  # --top 1: the best trial by the first objective only
    pngs = sorted(lidc_folder.glob("*/nodule-*/images/*.png"))
    rows = query(study_dir.parent, "SELECT trial_id, folder_name, layout, images, dice, dice_nonempty FROM external")
    assert rows.rows() == [("t-best", "unseen-lidc", "lidc_crops", len(pngs), *rows.row(0)[4:])]
    assert 0 <= rows["dice"][0] <= 1
    per_image = pl.read_parquet(study_dir / "runs" / "t-best" / "eval-external-unseen-lidc" / "images.parquet")
    assert per_image.height == len(pngs) and set(per_image["group"]) == {p.name for p in lidc_folder.iterdir()}

    report = _study(["report", "ext"], env)
    assert report.returncode == 0, report.stdout + report.stderr
    markdown = (study_dir / "report" / "report.md").read_text()
    section = markdown.split("## External validation", 1)[1].split("\n## ", 1)[0]
    dice_row = next(line for line in section.splitlines() if line.startswith("| t-best | unseen-lidc | dice |"))
    cells = [c.strip() for c in dice_row.strip("|").split("|")]
    internal, external, change, low, high = (float(c) for c in cells[3:8])
    assert internal == pytest.approx(pl.read_parquet(study_dir / "images" / "t-best.parquet")["dice"].mean(), abs=1e-3)
    assert external == pytest.approx(rows["dice"][0], abs=1e-3)
    assert change == pytest.approx(external - internal, abs=2e-3) and low <= change <= high


@pytest.mark.parametrize(
    "args,message",
    [
        (["--external", "/no/such/folder", "--layout", "lidc_crops"], r"/no/such/folder: not a folder"),
        (["--external", "{folder}", "--layout", "dicom"], r"layout='dicom': not one of"),
        (["--external", "{ph2}", "--layout", "folder_pairs"], r"1 annotator mask\(s\) but the run was trained with 4"),
        (["--external", "{folder}", "--layout", "lidc_crops", "--top", "0"], r"--top 0: must be ≥ 1"),
        (["--external", "{folder}", "--layout", "lidc_crops", "--samples", "0"], r"--samples 0: must be ≥ 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(untrained_study, lidc_folder, data_root, args, message):
    study_dir, env = untrained_study
    values = {"folder": str(lidc_folder), "ph2": str(data_root / "ph2")}
    before = sorted(str(p.relative_to(study_dir)) for p in study_dir.rglob("*"))
    result = _study(["evaluate", "ext", *(a.format(**values) for a in args)], env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(message, lines[0]), lines
    assert sorted(str(p.relative_to(study_dir)) for p in study_dir.rglob("*")) == before


def test_an_unknown_study_is_named(untrained_study):
    result = _study(["evaluate", "nope", "--external", "/tmp", "--layout", "lidc_crops"], untrained_study[1])
    assert result.returncode == 2 and re.search(r"results/nope: no such study", result.stdout), result.stdout


def test_a_trial_without_its_config_is_rebuilt_from_the_spec_and_its_row(tmp_path):
    """Studies run before trials kept config.yaml: parameters from the row, seed from `-r<k>`."""
    from platform.study_external import trial_run_config

    spec = load_spec(write_spec(tmp_path / "spec.yaml", name="old", seed=3))
    row = {"trial_id": "abc-r1", "p_wce_weight": 7.5, "p_conditioning": "cfg", "p_guidance_scale": 2.0}
    config = trial_run_config(row, spec, tmp_path / "old", tmp_path / "prepared")
    assert config.model.wce_weight == 7.5 and config.model.guidance and config.model.guidance_scale == 2.0
    assert config.train.seed == 4 and config.train.run_name == "abc-r1"
    assert config.data.image_size == 32 and config.train.prepared_dir == str(tmp_path / "prepared")
