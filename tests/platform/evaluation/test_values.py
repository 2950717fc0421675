"""ValUES-style uncertainty metrics against hand computations."""

import math
from platform.evaluation.values import (
    THRESHOLDS,
    aggregate,
    boundary_distances,
    choose_threshold,
    decompose,
    disagreement,
    failure_detection,
    normalized_cross_correlation,
    threshold_means,
)

import numpy as np
import pytest
import torch


def test_mutual_information_is_zero_when_all_samples_agree():
    probs = torch.full((4, 5, 5), 0.3)
    maps = decompose(probs)
    assert torch.allclose(maps["epistemic"], torch.zeros(5, 5, dtype=torch.float64), atol=1e-12)
    h = -(0.3 * math.log2(0.3) + 0.7 * math.log2(0.7))
    assert torch.allclose(maps["predictive"], torch.full((5, 5), h, dtype=torch.float64))
    assert torch.allclose(maps["aleatoric"], maps["predictive"])


def test_confident_but_disagreeing_samples_are_all_epistemic():
    probs = torch.tensor([0.0, 1.0, 0.0, 1.0]).reshape(4, 1, 1).expand(4, 2, 2)
    maps = decompose(probs)
    assert torch.allclose(maps["predictive"], torch.ones(2, 2, dtype=torch.float64), atol=1e-4)  # H(0.5) = 1 bit
    assert float(maps["aleatoric"].max()) < 1e-4 and float(maps["epistemic"].min()) > 0.999


def test_aggregations_by_hand():
    u = torch.zeros(4, 4)
    u[0, 0], u[0, 1], u[1, 0], u[1, 1] = 0.8, 0.6, 0.4, 0.2
    scores = aggregate(u, window=2, threshold=0.5)
    assert scores["mean"] == pytest.approx(2.0 / 16)
    assert scores["sum"] == pytest.approx(2.0)
    assert scores["patch_max"] == pytest.approx(0.5)  # the top-left 2×2 patch
    assert scores["threshold_mean"] == pytest.approx(0.7)  # 0.8 and 0.6
    assert aggregate(torch.zeros(3, 3))["threshold_mean"] == 0.0


def test_aurc_of_a_perfect_and_of_a_reversed_ranking():
    risks = np.array([0.0, 0.1, 0.5, 0.9])
    perfect, excess = failure_detection(risks * 2, risks)  # same order as the risks
    # coverage 1/4 … 1: mean risks 0, 0.05, 0.2, 0.375 → AURC 0.15625
    assert perfect == pytest.approx(0.15625) and excess == pytest.approx(0.0)
    reversed_, excess = failure_detection(-risks, risks)
    # kept in order 0.9, 0.5, 0.1, 0: means 0.9, 0.7, 0.5, 0.375 → 0.61875
    assert reversed_ == pytest.approx(0.61875) and excess == pytest.approx(0.61875 - 0.15625)


def test_threshold_means_by_hand():
    u = torch.tensor([[0.1, 0.3], [0.6, 0.9]])
    assert threshold_means(u, (0.0, 0.5, 0.95)) == pytest.approx([0.475, 0.75, 0.0])


def test_the_threshold_that_ranks_images_best_is_chosen():
    """Column k of the scores ranks the images by risk only at THRESHOLDS[7]; reversed elsewhere."""
    risks = np.array([0.0, 0.2, 0.6, 0.9])
    scores = np.tile(-risks[:, None], (1, len(THRESHOLDS)))
    scores[:, 7] = risks
    assert choose_threshold(scores, risks) == THRESHOLDS[7]
    assert choose_threshold(np.full((4, len(THRESHOLDS)), np.nan), risks) == 0.5  # nothing to rank: the default


def test_ncc_of_identical_and_of_independent_maps():
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((64, 64)))
    assert normalized_cross_correlation(a, a) == pytest.approx(1.0)
    assert normalized_cross_correlation(a, -a) == pytest.approx(-1.0)
    b = torch.from_numpy(rng.random((64, 64)))
    assert abs(normalized_cross_correlation(a, b)) < 0.05
    assert math.isnan(normalized_cross_correlation(a, torch.zeros(64, 64)))


def test_disagreement_marks_pixels_where_annotators_differ():
    annotations = torch.zeros(3, 2, 2, dtype=torch.bool)
    annotations[:, 0, 0] = True  # all agree: marked
    annotations[0, 0, 1] = True  # one of three
    assert disagreement(annotations).tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_boundary_distances_of_shifted_squares():
    a = torch.zeros(32, 32, dtype=torch.bool)
    a[8:16, 8:16] = True
    same = boundary_distances(a, a)
    assert same["hd95"] == 0.0 and same["nsd"] == 1.0
    b = torch.roll(a, 3, dims=1)  # shifted 3 px
    shifted = boundary_distances(a, b, tolerance=2.0)
    assert shifted["hd95"] == pytest.approx(3.0) and 0.0 < shifted["nsd"] < 1.0
    assert math.isnan(boundary_distances(a, torch.zeros_like(a))["hd95"])
