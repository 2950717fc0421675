"""The evaluation command on tiny trained runs: tables, figures, streaming, paired statistics."""

from pathlib import Path
from platform.evaluate import compare_runs, evaluate_run, main
from platform.evaluation.registry import SUMMARY_METRICS
from platform.evaluation.statistics import paired_comparison
from platform.train import run as train_run

import numpy as np
import polars as pl
import pytest
from rich.console import Console


@pytest.fixture
def trained(tiny):
    def make(*extra):
        summary = train_run(tiny(*extra), Console(quiet=True))
        from pathlib import Path

        return Path(summary["run_dir"])

    return make


def test_evaluate_writes_tables_and_figures(trained):
    run = trained()
    summary = evaluate_run(run, {"samples": "3", "steps": "2"}, [], Console(quiet=True))
    row = summary.row(0, named=True)
    assert row["model"] == "medseglatdiff" and row["conditioning"] == "concat" and row["wce_weight"] == 5.0
    for key in ("dice", "iou", "hm_iou", "ece", "ece_border", "brier", "ueo"):
        assert 0.0 <= row[key] <= 1.0, key
    assert 0.0 <= row["ged"] <= 2.0 and row["nll"] >= 0
    nonempty = pl.read_parquet(run / "eval-val" / "images.parquet").filter(pl.col("foreground") > 0)
    assert row["dice_nonempty"] == pytest.approx(float(nonempty["dice"].mean()))
    out = run / "eval-val"
    images = pl.read_parquet(out / "images.parquet")
    assert images.height == row["images"] and {"id", "group", "dice", "ged", "ece", "run"} <= set(images.columns)
    assert pl.read_parquet(out / "reliability.parquet")["count"].sum() == images.height * 32 * 32
    presence = pl.read_parquet(out / "presence.parquet")  # every image in one row of the table
    assert presence["images"].sum() == images.height and presence["raters_marking"].is_unique().all()
    # the per-image bin gaps add up to the pooled ECE (what `compare` bootstraps by patient)
    gaps = np.stack(images["ece_bin_gaps"].to_list()).sum(0)
    assert np.abs(gaps).sum() / images["pixels"].sum() == pytest.approx(row["ece"], rel=1e-9)
    for figure in ("reliability.png", "panels.png", "uncertainty.png", "risk_coverage.png", "histograms.png"):
        assert (out / figure).stat().st_size > 5000  # a real PNG with content, not an empty canvas


def test_the_uncertainty_threshold_is_chosen_on_validation_and_reused_on_test(trained):
    """ValUES' threshold-mean score: validation chooses the threshold (lowest AURC over the
    candidates), test reuses it instead of choosing again, `threshold=` overrides both."""
    from platform.evaluation.values import THRESHOLDS, failure_detection

    run = trained()
    val = evaluate_run(run, {"samples": "3", "steps": "2"}, [], Console(quiet=True)).row(0, named=True)
    assert val["uncertainty_threshold"] in THRESHOLDS
    images = pl.read_parquet(run / "eval-val" / "images.parquet")
    risks = 1 - images["dice"].to_numpy()
    chosen_aurc = failure_detection(images["score_threshold_mean"].to_numpy(), risks)[0]
    assert chosen_aurc == pytest.approx(val["aurc_threshold_mean"])
    test = evaluate_run(run, {"samples": "3", "steps": "2", "split": "test"}, [], Console(quiet=True))
    assert test["uncertainty_threshold"][0] == val["uncertainty_threshold"]
    fixed = evaluate_run(
        run, {"samples": "3", "steps": "2", "split": "test", "threshold": "0.35"}, [], Console(quiet=True)
    )
    assert fixed["uncertainty_threshold"][0] == 0.35
    assert main([f"run={run}", "threshold=abc"]) == 2 and main([f"run={run}", "threshold=1.5"]) == 2


def test_streamed_evaluation_does_not_depend_on_batch_size(trained):
    run = trained("model=unet")  # deterministic: batching cannot change the samples (up to float32 rounding)
    small = evaluate_run(run, {"samples": "2", "batch": "1"}, [], Console(quiet=True)).row(0, named=True)
    large = evaluate_run(run, {"samples": "2", "batch": "16"}, [], Console(quiet=True)).row(0, named=True)
    for key in SUMMARY_METRICS:
        assert small[key] == pytest.approx(large[key], rel=1e-6, abs=1e-9, nan_ok=True), key  # float32 conv sums


def test_compare_two_runs(trained, capsys):
    a, b = trained("model=unet"), trained("model=medseglatdiff")
    for run in (a, b):
        evaluate_run(run, {"samples": "2", "steps": "2"}, [], Console(quiet=True))
    table = compare_runs(a, b, {"cluster": "group"})
    assert table["metric"].to_list()[-5:] == ["dice", "ece", "ece_pooled", "brier", "presence_error"]
    pooled = table.filter(pl.col("metric") == "ece_pooled").row(0, named=True)
    for side, run in (("mean_a", a), ("mean_b", b)):  # every image paired: each run's own pooled ECE
        assert pooled[side] == pytest.approx(pl.read_parquet(run / "eval-val" / "summary.parquet")["ece"][0])
    assert (table["ci_low"] <= table["difference"]).all() and (table["difference"] <= table["ci_high"]).all()
    assert main(["compare", str(a), str(b)]) == 0
    assert "Wilcoxon" in capsys.readouterr().out


def _evaluated(folder: Path, dice: list[float], foreground: list[float]) -> Path:
    (folder / "eval-val").mkdir(parents=True)
    n = len(dice)
    pl.DataFrame(
        {"id": [f"p{i // 2}/s{i}" for i in range(n)], "group": [f"p{i // 2}" for i in range(n)], "dice": dice}
        | {"foreground": foreground, "ece": [0.01] * n, "brier": [0.02] * n}
    ).write_parquet(folder / "eval-val" / "images.parquet")
    return folder


def test_compare_puts_dice_on_non_empty_slices_first_when_some_are_empty(tmp_path):
    """On LIDC about a third of the slices have an empty consensus: there Dice is 1 for predicting
    nothing, so the comparison leads with the slices that have a lesion to find."""
    empty_slices = [0.0, 0.002, 0.0, 0.01]
    a = _evaluated(tmp_path / "a", [1.0, 0.6, 1.0, 0.5], empty_slices)
    b = _evaluated(tmp_path / "b", [0.0, 0.8, 0.0, 0.9], empty_slices)
    table = compare_runs(a, b, {"cluster": "group"})
    assert table["metric"].to_list() == ["dice_nonempty", "dice", "ece", "brier"]
    row = table.row(0, named=True)
    assert row["pairs"] == 2 and row["difference"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert row["mean_a"] == pytest.approx(0.55) and row["mean_b"] == pytest.approx(0.85)
    assert table.row(1, named=True)["difference"] == pytest.approx(-0.35)  # overall Dice says the opposite
    ph2 = compare_runs(
        _evaluated(tmp_path / "c", [0.9, 0.8], [0.3, 0.2]), _evaluated(tmp_path / "d", [0.8, 0.9], [0.3, 0.2]), {}
    )
    assert ph2["metric"].to_list() == ["dice", "ece", "brier"]  # no empty slice: it would repeat dice


def test_paired_bootstrap_recovers_a_known_difference():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.9, 200)
    a = pl.DataFrame({"id": [str(i) for i in range(200)], "dice": base, "ece": base / 10, "brier": base / 5})
    b = a.with_columns(pl.col("dice") + 0.05 + rng.normal(0, 0.01, 200))
    table = paired_comparison(a, b).filter(pl.col("metric") == "dice").row(0, named=True)
    assert table["ci_low"] < 0.05 < table["ci_high"] and table["ci_high"] - table["ci_low"] < 0.01
    assert table["wilcoxon_p"] < 1e-10
    same = paired_comparison(a, a).filter(pl.col("metric") == "ece").row(0, named=True)
    assert same["difference"] == 0 and np.isnan(same["wilcoxon_p"])


def test_pooled_ece_is_recomputed_from_bin_gaps_on_resampled_patients():
    """Two patients of two one-pixel-bin images: the per-image ECEs average 0.5 on side a, but
    opposite gaps cancel when pooled (a pixel-pooled ECE is not the mean of per-image ones)."""
    ids, groups = ["p0/s0", "p0/s1", "p1/s0", "p1/s1"], ["p0", "p0", "p1", "p1"]
    frame = {"id": ids, "group": groups, "pixels": [2, 2, 2, 2], "dice": [1.0] * 4}
    a = pl.DataFrame(frame | {"ece": [0.5] * 4, "ece_bin_gaps": [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]})
    b = pl.DataFrame(frame | {"ece": [0.5] * 4, "ece_bin_gaps": [[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]})
    row = paired_comparison(a, b, ("ece",), "group").filter(pl.col("metric") == "ece_pooled").row(0, named=True)
    assert row["mean_a"] == 0.0 and row["mean_b"] == pytest.approx(2 / 8) and row["clusters"] == 2
    # resampled patients: a stays 0 (each patient's gaps cancel), b is 2/4 or 0 per drawn patient
    assert row["ci_low"] == 0.0 and row["ci_high"] == pytest.approx(0.5) and np.isnan(row["wilcoxon_p"])
    plain = paired_comparison(a.drop("ece_bin_gaps"), b, ("ece",), "group")
    assert plain["metric"].to_list() == ["ece"]  # a table from before the gaps: no pooled row


def test_paired_bootstrap_resamples_only_the_clusters_a_metric_has_pairs_in():
    rng = np.random.default_rng(1)
    ids, groups = [str(i) for i in range(40)], [f"p{i // 4}" for i in range(40)]  # ten patients of four slices
    a = pl.DataFrame({"id": ids, "group": groups, "dice": rng.uniform(0.4, 0.9, 40)})
    b = a.with_columns(pl.col("dice") + rng.normal(0.05, 0.05, 40))
    # two more patients whose slices all have an empty consensus: no pair for `dice`
    empty = pl.DataFrame({"id": [f"e{i}" for i in range(8)], "group": [f"q{i // 4}" for i in range(8)]})
    empty = empty.with_columns(pl.lit(None, pl.Float64).alias("dice"))
    alone, padded = (
        paired_comparison(a, b, ("dice",), "group"),
        paired_comparison(pl.concat([a, empty]), pl.concat([b, empty]), ("dice",), "group"),
    )
    assert padded["clusters"][0] == alone["clusters"][0] == 10 and padded["pairs"][0] == 40
    assert padded["ci_low"][0] == alone["ci_low"][0] and padded["ci_high"][0] == alone["ci_high"][0]
    none = paired_comparison(empty, empty, ("dice",), "group").row(0, named=True)
    assert none["pairs"] == 0 and np.isnan(none["ci_low"]) and np.isnan(none["ci_high"])


def test_bad_evaluate_arguments_exit_2(tmp_path):
    assert main(["run=" + str(tmp_path)]) == 2
    assert main(["samples=3"]) == 2
    assert main(["bogus=1", "run=x"]) == 2
    assert main(["compare", str(tmp_path)]) == 2


def test_sampling_overrides_evaluate_beside_the_plain_evaluation(trained):
    run = trained()
    plain = evaluate_run(run, {"samples": "3", "steps": "2"}, [], Console(quiet=True))
    before = (run / "eval-val" / "summary.parquet").read_bytes()
    spread = main([f"run={run}", "samples=3", "steps=2", "model.prior_threshold_spread=0.5"])
    assert spread == 0 and (run / "eval-val" / "summary.parquet").read_bytes() == before  # untouched
    variant = pl.read_parquet(run / "eval-val-prior_threshold_spread=0.5" / "summary.parquet")
    assert variant["images"][0] == plain["images"][0]
    assert main([f"run={run}", "model.latent_factor=8"]) == 2  # a training key cannot change at evaluation


def _seeded(folder: Path, seed: int, dice: list[float]) -> Path:
    """An evaluated run of one training seed: two patients of two slices, the first slice of each empty."""
    _evaluated(folder, dice, [0.0, 0.01, 0.0, 0.02])
    images = pl.read_parquet(folder / "eval-val" / "images.parquet").with_columns(pl.lit(seed).alias("seed"))
    images.write_parquet(folder / "eval-val" / "images.parquet")
    return folder


def test_compare_pools_seeds_pairing_each_run_with_the_same_seed(tmp_path):
    """Folder order is not seed order here: pairing by position would pair a's seed 10 with b's seed 2."""
    _seeded(tmp_path / "a-seed2", 2, [1.0, 0.5, 1.0, 0.7])
    _seeded(tmp_path / "a-seed10", 10, [1.0, 0.6, 1.0, 0.2])
    _seeded(tmp_path / "b-seed2", 2, [1.0, 0.6, 1.0, 0.9])  # +0.1, +0.2 on the non-empty slices
    _seeded(tmp_path / "b-seed10", 10, [0.0, 0.6, 1.0, 0.5])  # +0.0, +0.3
    table = compare_runs(f"{tmp_path}/a-seed*", f"{tmp_path}/b-seed*", {"cluster": "group"})
    row = table.row(0, named=True)
    assert row["metric"] == "dice_nonempty" and row["seeds"] == 2
    assert row["pairs"] == 4 and row["clusters"] == 2  # a patient is drawn with its slices of both seeds
    assert row["difference"] == pytest.approx(0.15) and row["mean_a"] == pytest.approx(0.5)
    assert table.row(1, named=True)["difference"] == pytest.approx((0.1 + 0.2 - 1.0 + 0.3) / 8)
    assert (tmp_path / "b-seed10" / "eval-val" / "compare-a-seed10-seeds2-10.parquet").is_file()
    assert main(["compare", f"{tmp_path}/a-seed*", f"{tmp_path}/b-seed*", "cluster=group"]) == 0


def test_compare_refuses_seeds_it_cannot_pair(tmp_path, capsys):
    for name, seed in (("a-seed0", 0), ("a-seed1", 1), ("b-seed0", 0), ("c-seed0", 0), ("c-again", 0)):
        _seeded(tmp_path / name, seed, [1.0, 0.5, 1.0, 0.7])
    assert main(["compare", f"{tmp_path}/a-seed*", f"{tmp_path}/b-seed*"]) == 2
    assert "a-seed1" in capsys.readouterr().out  # seed 1 has no partner, and the message names its run
    assert main(["compare", f"{tmp_path}/a-seed0", f"{tmp_path}/c-*"]) == 2  # two runs of seed 0 on one side
    assert main(["compare", f"{tmp_path}/z-*", f"{tmp_path}/a-seed*"]) == 2  # matches nothing
    # the shell expanded an unquoted pattern: three folders, so the sides are ambiguous
    assert main(["compare", str(tmp_path / "a-seed0"), str(tmp_path / "a-seed1"), str(tmp_path / "b-seed0")]) == 2
    assert "quoted patterns" in capsys.readouterr().out


def test_compare_takes_evaluation_folders_for_sampling_variants(tmp_path):
    """Runs saved before a sampling default changed are evaluated with it as an override, into
    eval-<split>-<key>=<value>/: a side can name those folders, pooled over seeds as runs are."""
    for seed in (0, 1):
        _seeded(tmp_path / f"a-seed{seed}", seed, [1.0, 0.5, 1.0, 0.7])
        variant = _seeded(tmp_path / "v" / f"a-seed{seed}", seed, [1.0, 0.6, 1.0, 0.8]) / "eval-val"
        variant.rename(tmp_path / f"a-seed{seed}" / "eval-val-binary_samples=true")
    plain, binary = f"{tmp_path}/a-seed*/eval-val", f"{tmp_path}/a-seed*/eval-val-binary_samples=true"
    table = compare_runs(plain, binary, {"split": "test"})  # split does not apply to evaluation folders
    assert table["seeds"][0] == 2 and table["difference"][0] == pytest.approx(0.1)
    assert table["run_b"][0] == "a-seed0/eval-val-binary_samples=true,a-seed1/eval-val-binary_samples=true"
    saved = tmp_path / "a-seed0" / "eval-val-binary_samples=true" / "compare-a-seed0-eval-val-seeds0-1.parquet"
    assert saved.is_file()
    assert main(["compare", plain, binary, "cluster=group"]) == 0
