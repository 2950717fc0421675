"""Fitting the prior's start-mask threshold on training masks."""

import pytest
import torch

from models.thresholds import SPREADS, best_spread, best_threshold, spread_thresholds


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


def _images(*lesions: tuple[float, float]) -> torch.Tensor:
    """One map per (lesion probability, probability of a false-positive square beside it)."""
    probs = torch.zeros(len(lesions), 1, 16, 16)
    for probs_i, (lesion, false_positive) in zip(probs, lesions, strict=True):
        probs_i[..., 4:8, 4:8] = lesion
        probs_i[..., 10:14, 10:14] = false_positive
    return probs


def test_a_threshold_within_two_standard_errors_of_the_best_gives_way_to_the_one_nearest_one_half():
    annotations = torch.zeros(20, 4, 16, 16)
    annotations[:, :, 4:8, 4:8] = 1
    # 18 clear lesions; one at 0.42 that only t ≤ 0.4 finds; one whose false positive at 0.42 t ≤ 0.4 keeps
    probs = _images(*[(0.9, 0.0)] * 18, (0.42, 0.0), (0.9, 0.42))
    assert best_threshold(probs[:1], annotations[:1]) == pytest.approx(0.5)  # one image: its exact best
    assert best_threshold(probs[18:19], annotations[18:19]) == pytest.approx(0.4)
    assert best_threshold(probs, annotations) == pytest.approx(0.5)  # 0.4 is ahead by 0.033 ± 0.054
    # two under-confident lesions of twenty: 0.4 is ahead by 0.10 ± 0.069, beyond one standard
    # error but within two; ten: by 0.5 ± 0.11, beyond both
    two = _images(*[(0.9, 0.0)] * 18, *[(0.42, 0.0)] * 2)
    assert best_threshold(two, annotations, standard_errors=1.0) == pytest.approx(0.4)
    assert best_threshold(two, annotations) == pytest.approx(0.5)
    assert best_threshold(_images(*[(0.9, 0.0)] * 10, *[(0.42, 0.0)] * 10), annotations) == pytest.approx(0.4)


def test_spread_thresholds_centre_on_the_threshold_and_only_the_lower_end_is_clipped():
    assert spread_thresholds(0.4, 0.5, 1).tolist() == pytest.approx([0.4])
    assert spread_thresholds(0.4, 0.0, 3).tolist() == pytest.approx([0.4] * 3)
    e = 2.718281828
    assert spread_thresholds(0.4, 0.5, 3).tolist() == pytest.approx([0.4 * e**-0.5, 0.4, 0.4 * e**0.5])
    wide = spread_thresholds(0.5, 3.0, 16)
    assert wide.min() >= 0.01 and wide.max() == pytest.approx(0.5 * e**3)  # above 1: an empty mask


def test_the_spread_matching_one_annotator_is_none_and_matching_doubters_is_wide():
    probs = _images((0.9, 0.0))
    one = torch.zeros(1, 1, 16, 16)
    one[..., 4:8, 4:8] = 1
    assert best_spread(probs, one, 0.5) == 0.0  # every sample should be that annotator's mask
    doubters = torch.zeros(1, 4, 16, 16)
    doubters[:, :1, 4:8, 4:8] = 1  # one of four annotators marks the lesion, three mark nothing
    assert best_spread(probs, doubters, 0.5) == max(SPREADS)  # as many empty samples as it can give


def test_an_even_count_puts_its_majority_threshold_at_the_centre_only_when_asked():
    e = 2.718281828
    symmetric = spread_thresholds(0.5, 1.5, 16)
    assert symmetric[7] == pytest.approx(0.5 * e ** (-1.5 / 15))  # below 0.5: the mean mask marks more
    shifted = spread_thresholds(0.5, 1.5, 16, majority_at_center=True)
    assert shifted[7] == pytest.approx(0.5)  # ≥ 8 of 16 samples mark a pixel ⇔ the map ≥ 0.5 there
    assert shifted.tolist() == pytest.approx([0.5 * e ** (1.5 * (k - 8) / 8) for k in range(1, 17)])
    odd = spread_thresholds(0.5, 1.5, 5, majority_at_center=True)
    assert torch.equal(odd, spread_thresholds(0.5, 1.5, 5))  # an odd count is symmetric already
    assert spread_thresholds(0.4, 1.5, 1, majority_at_center=True).tolist() == pytest.approx([0.4])
