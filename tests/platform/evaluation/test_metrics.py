"""Every metric against hand-computed values on tiny arrays."""

from platform.evaluation.calibration import CalibrationAccumulator, region_near_annotations
from platform.evaluation.distribution import generalized_energy_distance, hungarian_matched_iou, iou_matrix
from platform.evaluation.uncertainty import UncertaintyErrorAccumulator
from platform.metrics import dice, iou, majority_vote

import numpy as np
import pytest
import torch
from netcal.metrics import ECE


def _mask(*pixels, size=4):
    m = torch.zeros(size, size, dtype=torch.bool)
    for i, j in pixels:
        m[i, j] = True
    return m


def test_dice_and_iou_perfect_inverted_empty_single_pixel():
    a = _mask((0, 0), (0, 1), (1, 0), (1, 1))
    assert dice(a, a) == 1 and iou(a, a) == 1
    assert dice(a, ~a) == 0 and iou(a, ~a) == 0
    empty = _mask()
    assert dice(empty, empty) == 1 and iou(empty, empty) == 1
    assert dice(_mask((2, 2)), empty) == 0
    b = _mask((0, 0), (3, 3))
    assert dice(a, b).item() == pytest.approx(2 * 1 / (4 + 2)) and iou(a, b).item() == pytest.approx(1 / 5)


def test_majority_vote_counts_half_as_majority():
    annotations = torch.stack([_mask((0, 0), (1, 1)), _mask((0, 0)), _mask((0, 0), (1, 1)), _mask()])[None]
    vote = majority_vote(annotations)[0, 0]
    assert vote[0, 0] and vote[1, 1] and vote.sum() == 2  # 3 of 4 and 2 of 4


def test_ece_brier_nll_by_hand():
    probs = torch.tensor([0.05, 0.15, 0.95, 0.95])
    target = torch.tensor([0.0, 1.0, 1.0, 0.0])
    acc = CalibrationAccumulator(bins=10)
    acc.update(probs, target)
    # bins: 0 → {0.05: y 0}, 1 → {0.15: y 1}, 9 → {0.95, 0.95: y 1, 0}
    expected = (1 * abs(0 - 0.05) + 1 * abs(1 - 0.15) + 2 * abs(0.5 - 0.95)) / 4
    assert acc.ece() == pytest.approx(expected)
    assert acc.brier() == pytest.approx((0.05**2 + 0.85**2 + 0.05**2 + 0.95**2) / 4)
    assert acc.nll() == pytest.approx(-(np.log(0.95) + np.log(0.15) + np.log(0.95) + np.log(0.05)) / 4)
    perfect = CalibrationAccumulator()
    perfect.update(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]))
    assert perfect.ece() == 0 and perfect.brier() == 0


def test_ece_matches_netcal_and_streaming_equals_in_memory():
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=20000)
    probs[:50] = np.linspace(0, 1, 50)  # bin edges exactly, including 0.3 and 1.0
    labels = (rng.uniform(size=20000) < probs**1.3).astype(float)
    streamed = CalibrationAccumulator(bins=10)
    for chunk in np.array_split(np.arange(20000), 7):
        streamed.update(torch.from_numpy(probs[chunk]), torch.from_numpy(labels[chunk]))
    whole = CalibrationAccumulator(bins=10)
    whole.update(torch.from_numpy(probs), torch.from_numpy(labels))
    reference = ECE(bins=10).measure(probs, labels.astype(int))
    assert streamed.ece() == pytest.approx(whole.ece(), abs=1e-12)
    assert streamed.ece() == pytest.approx(reference, abs=1e-9)
    assert streamed.brier() == pytest.approx(whole.brier(), abs=1e-12)


def test_perfectly_calibrated_predictor_has_ece_near_zero():
    rng = np.random.default_rng(1)
    probs = rng.uniform(size=200000)
    labels = rng.uniform(size=200000) < probs
    acc = CalibrationAccumulator()
    acc.update(torch.from_numpy(probs), torch.from_numpy(labels))
    assert acc.ece() < 0.01  # sampling error only
    rows = acc.reliability()
    assert len(rows) == 10 and sum(r["count"] for r in rows) == 200000
    assert all(abs(r["accuracy"] - r["confidence"]) < 0.02 for r in rows)


def test_border_region_is_a_chebyshev_band_around_any_annotation():
    annotations = torch.stack([_mask((3, 3), size=8), _mask(size=8)])[None]
    region = region_near_annotations(annotations, radius=1)[0]
    assert region.sum() == 9 and region[2:5, 2:5].all()
    assert region_near_annotations(annotations, radius=0)[0].sum() == 1


def test_ged_is_zero_when_samples_equal_annotators_and_positive_otherwise():
    annotators = torch.stack([_mask((0, 0), (0, 1)), _mask((0, 0)), _mask(), _mask((3, 3))])
    assert generalized_energy_distance(annotators, annotators) == pytest.approx(0.0, abs=1e-7)
    assert generalized_energy_distance(annotators.flip(0), annotators) == pytest.approx(0.0, abs=1e-7)
    empty = torch.zeros(2, 4, 4, dtype=torch.bool)
    assert generalized_energy_distance(empty, empty) == 0.0  # empty vs empty: distance 0
    one, other = _mask((0, 0))[None], _mask((3, 3))[None]
    assert generalized_energy_distance(one, other) == pytest.approx(2.0)  # 2·1 − 0 − 0


def test_hungarian_matched_iou_by_hand():
    a, b = _mask((0, 0), (0, 1)), _mask((3, 3))
    samples, annotations = torch.stack([b, a]), torch.stack([a, b])
    assert hungarian_matched_iou(samples, annotations) == pytest.approx(1.0)
    # 4 samples vs 2 annotators: tiled to 4; three samples equal a, one b → matches a,a / b,b
    four = torch.stack([a, a, a, b])
    assert hungarian_matched_iou(four, annotations) == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert iou_matrix(torch.stack([a]), torch.stack([_mask((0, 0))]))[0, 0] == pytest.approx(0.5)


def test_uncertainty_error_correlation_and_overlap():
    acc = UncertaintyErrorAccumulator()
    error = torch.tensor([1.0, 1.0, 0.0, 0.0])
    acc.update(torch.tensor([0.9, 0.8, 0.1, 0.0]), error)
    assert acc.overlap() == pytest.approx(1.0)  # uncertainty > τ is exactly the error mask
    assert acc.correlation() > 0.9
    anti = UncertaintyErrorAccumulator()
    anti.update(torch.tensor([0.0, 0.1, 0.9, 0.8]), error)
    assert anti.correlation() < -0.9
    assert np.isnan(UncertaintyErrorAccumulator().correlation())
