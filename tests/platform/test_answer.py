"""The report's answer on synthetic study rows whose differences are known."""

import copy
from platform.answer import answer, configurations
from platform.spec import parse_spec

import numpy as np
import polars as pl
import pytest

from tests.platform.test_spec import SMOKE


def _spec(repeats=2, reference=None):
    raw = copy.deepcopy(SMOKE)
    raw |= {
        "search": {"model.wce_weight": {"type": "log_float", "low": 1.0, "high": 100.0}},
        "objectives": [{"metric": "dice_nonempty", "mode": "max"}, {"metric": "ece", "mode": "min"}],
        "repeats": repeats,
        "question": "Which WCE weight?",
    }
    if reference is not None:
        raw["reference"] = reference
    return parse_spec(raw)


def _study(effect: float, seeds: int = 2, patients: int = 30, seed: int = 0):
    """Trials of w = 50 and w = 5 (and w = 20), `seeds` each; w = 5 is better by `effect` on every
    non-empty slice; ECE is identical up to noise. Returns (trial rows, per-image rows)."""
    rng = np.random.default_rng(seed)
    rows, images = [], []
    slices = [(f"p{p}", f"p{p}-s{s}", s > 0) for p in range(patients) for s in range(3)]
    base = {i: rng.uniform(0.3, 0.6) for _, i, _ in slices}
    for w, shift in ((50.0, 0.0), (5.0, effect), (20.0, effect / 2)):
        for r in range(seeds):
            trial = f"w{w:g}-r{r}"
            per_image = []
            for group, image, marked in slices:
                dice = base[image] + shift + rng.normal(0, 0.01) if marked else 1.0
                ece = 0.01 + rng.normal(0, 0.001)
                per_image.append(
                    {"trial_id": trial, "id": image, "group": group, "dice": dice, "foreground": float(marked)}
                    | {"ece": ece}
                )
            frame = pl.DataFrame(per_image)
            images.append(frame)
            rows.append(
                {
                    "trial_id": trial,
                    "p_wce_weight": w,
                    "dice_nonempty": float(frame.filter(pl.col("foreground") > 0)["dice"].mean()),
                    "ece": float(frame["ece"].mean()),
                }
            )
    return pl.DataFrame(rows), pl.concat(images)


def test_configurations_average_seeds_with_a_t_interval():
    done, _ = _study(0.1)
    table = configurations(done, _spec())
    assert table.height == 3 and table["seeds"].to_list() == [2, 2, 2]
    assert table["p_wce_weight"][0] == 5.0  # best first
    low, mean, high = table.row(0, named=True)["dice_nonempty_ci_low"], table["dice_nonempty"][0], None
    high = table.row(0, named=True)["dice_nonempty_ci_high"]
    assert low < mean < high


def test_a_known_difference_is_stated_against_the_reference():
    done, images = _study(0.1)
    sentence, configs, table = answer(_spec(reference={"model.wce_weight": 50.0}), done, images)
    row = table.filter(pl.col("metric") == "dice_nonempty").row(0, named=True)
    assert row["difference"] == pytest.approx(0.1, abs=0.01) and row["ci_low"] > 0.08 and row["clusters"] == 30
    assert sentence.startswith("Which WCE weight? The configuration (wce_weight = 5, 2 seeds) is best on dice_nonempty")
    assert "against the reference (wce_weight = 50, 2 seeds)" in sentence
    assert "dice_nonempty better by 0.1" in sentence and "do not decide" not in sentence
    assert "ece differs by" in sentence  # identical ECE: its CI covers 0


def test_no_difference_is_said_plainly():
    done, images = _study(0.0)
    sentence, _, table = answer(_spec(reference={"model.wce_weight": 50.0}), done, images)
    assert "The data do not decide on dice_nonempty" in sentence


def test_the_reference_being_best_is_said_and_compared_with_the_next():
    done, images = _study(-0.1)
    sentence, _, table = answer(_spec(reference={"model.wce_weight": 50.0}), done, images)
    assert sentence.startswith("Which WCE weight? The reference (wce_weight = 50, 2 seeds) is best")
    assert "against the best other configuration (wce_weight = 20" in sentence


def test_without_a_reference_the_best_is_compared_with_the_runner_up():
    done, images = _study(0.1, seeds=1)
    sentence, configs, _ = answer(_spec(repeats=1), done, images)
    assert "against the runner-up (wce_weight = 20)" in sentence
    assert configs["dice_nonempty_ci_low"].is_null().all()  # one seed: no interval over seeds
