"""Fitting the prior's start-mask threshold on training masks."""

import pytest
import torch

from models.thresholds import best_threshold, spread_thresholds


def _square(value: float) -> torch.Tensor:
    probs = torch.zeros(1, 1, 16, 16)
    probs[..., 4:8, 4:8] = value
    return probs


def test_an_under_confident_map_is_cut_below_its_lesion_probability():
    annotations = torch.zeros(1, 4, 16, 16)
    annotations[:, :, 4:8, 4:8] = 1
    assert best_threshold(_square(0.32), annotations) == pytest.approx(0.3)  # 0.35 and above find nothing


def test_empty_images_keep_the_threshold_from_marking_everything():
    # a lesion image (lesion 0.6, background 0.25) and an empty image whose map is 0.25 everywhere
    probs = torch.cat([_square(0.6).clamp(min=0.25), torch.full((1, 1, 16, 16), 0.25)])
    annotations = torch.zeros(2, 3, 16, 16)
    annotations[0, :, 4:8, 4:8] = 1
    assert 0.25 < best_threshold(probs, annotations) <= 0.6


def test_the_majority_vote_is_the_target_and_ties_go_to_the_candidate_nearest_one_half():
    annotations = torch.zeros(1, 4, 16, 16)
    annotations[:, :1, 4:8, 4:8] = 1  # one annotator of four: the consensus is empty
    assert best_threshold(_square(0.9), annotations) == pytest.approx(0.95)  # only 0.95 predicts empty
    annotations[:, :2] = annotations[:, :1]  # two of four: half the annotators make the consensus
    assert best_threshold(_square(0.9), annotations) == pytest.approx(0.5)  # 0.05 … 0.9 all tie at Dice 1


def test_spread_thresholds_centre_on_the_threshold_and_stay_in_range():
    assert spread_thresholds(0.4, 0.5, 1).tolist() == pytest.approx([0.4])
    assert spread_thresholds(0.4, 0.0, 3).tolist() == pytest.approx([0.4] * 3)
    e = 2.718281828
    assert spread_thresholds(0.4, 0.5, 3).tolist() == pytest.approx([0.4 * e**-0.5, 0.4, 0.4 * e**0.5])
    wide = spread_thresholds(0.5, 3.0, 16)
    assert wide.min() >= 0.01 and wide.max() <= 0.99
