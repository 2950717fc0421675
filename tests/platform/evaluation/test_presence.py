"""Lesion presence: the share of samples marking anything against the share of annotators, by hand."""

from platform.evaluation.ensembles import EvaluationSettings, evaluate_ensembles
from platform.evaluation.presence import presence_gate, presence_table

import polars as pl
import pytest
import torch
from torch import nn

from models.ensemble import Ensemble


class _Split:
    """Four 8×8 images, four annotators: all four, one, none and two of them mark a lesion."""

    def __init__(self) -> None:
        self.images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8).numpy()  # image i is all i
        masks = torch.zeros(4, 4, 8, 8, dtype=torch.uint8)
        masks[0, :, 2:5, 2:5] = 1
        masks[1, 2, 1:3, 1:3] = 1
        masks[3, 0, 5:7, 5:7] = 1
        masks[3, 3, 0:2, 0:2] = 1  # two raters, apart: the majority vote is still empty
        self.masks = masks.numpy()

    def __len__(self) -> int:
        return 4


class _Marking(nn.Module):
    """Image i (all pixels i) gets MARKING[i] samples marking one pixel of its four."""

    MARKING = (4, 2, 1, 0)

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def sample(self, images, samples, steps, generator=None):
        probs = torch.zeros(samples, *images.shape)
        for b in range(images.shape[0]):
            probs[: self.MARKING[int(images[b, 0, 0, 0])], b, 0, 3, 3] = 1.0
        return Ensemble(probs)


@pytest.mark.parametrize("batch", [1, 4])
def test_presence_error_and_table_by_hand(batch):
    settings = EvaluationSettings(samples=4, steps=1, batch_size=batch)
    result = evaluate_ensembles(_Marking(), _Split(), list("abcd"), settings)
    images = result.images
    assert images["raters_marking"].to_list() == [1.0, 0.25, 0.0, 0.5]
    assert images["samples_marking"].to_list() == [1.0, 0.5, 0.25, 0.0]
    assert images["presence_error"].to_list() == pytest.approx([0.0, 0.25, 0.25, 0.5])
    assert result.summary["presence_error"] == pytest.approx(0.25)
    table = presence_table(images)
    assert table["raters_marking"].to_list() == [0.0, 0.25, 0.5, 1.0]
    assert table["images"].to_list() == [1.0, 1.0, 1.0, 1.0]
    assert table["samples_marking"].to_list() == [0.25, 0.5, 0.0, 1.0]
    # the ensemble-mean mask marks where at least half the samples do: images 0 and 1
    assert table["mask_marks"].to_list() == [0.0, 1.0, 0.0, 1.0]
    # empty consensus on the first three (two raters apart are no majority); one pixel of nine on the last
    assert table["dice"].to_list() == pytest.approx([1.0, 0.0, 1.0, 2 / 10])


def test_presence_table_of_an_evaluation_made_before_the_columns_is_empty():
    old = pl.DataFrame({"id": ["a"], "dice": [0.5], "ece": [0.01], "predicted_foreground": [0.1]})
    assert presence_table(old).is_empty()


def test_presence_gate_empties_the_masks_below_its_threshold_by_hand():
    settings = EvaluationSettings(samples=4, steps=1)
    images = evaluate_ensembles(_Marking(), _Split(), list("abcd"), settings).images
    assert images["confidence_max"].to_list() == [1.0, 0.5, 0.25, 0.0]
    assert presence_gate(images, 0.5)["dice"].to_list() == pytest.approx(images["dice"].to_list())
    gated = presence_gate(images, 0.75)
    # image 1 (two samples of four, one rater of four: majority empty) is emptied: Dice 0 -> 1
    assert gated["gated"].to_list() == [False, True, False, False]
    assert gated["dice"].to_list() == pytest.approx([2 / 10, 1.0, 1.0, 1.0])
    assert gated["predicted_foreground"].to_list()[1] == 0.0
    # above every image's confidence, image 0 (majority marks, Dice 2/10) scores 0
    assert presence_gate(images, 1.01)["dice"].to_list() == pytest.approx([0.0, 1.0, 1.0, 1.0])
