"""Every metric the study spec accepts as an objective reaches the trial row and the objective report."""

import math
from platform.evaluation.ensembles import EvaluationSettings, evaluate_ensembles
from platform.evaluation.registry import OBJECTIVES, SUMMARY_METRICS
from platform.results import TRIAL_SCHEMA, trial_frame
from platform.spec import METRICS, parse_spec
from platform.trial_rows import objective_values

import pytest
import torch
import yaml
from torch import nn

from models.ensemble import Ensemble
from tests.conftest import REPO


class _Split:
    """Four 8×8 images, two annotators, foreground on the first two."""

    def __init__(self) -> None:
        self.images = torch.zeros(4, 1, 8, 8).numpy()
        masks = torch.zeros(4, 2, 8, 8, dtype=torch.uint8)
        masks[0, :, 2:5, 2:5] = 1
        masks[1, 0, 1:3, 1:3] = 1
        self.masks = masks.numpy()

    def __len__(self) -> int:
        return 4


class _Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def sample(self, images, samples, steps, generator=None):
        return Ensemble(torch.rand(samples, *images.shape, generator=generator))


@pytest.fixture(scope="module")
def summary():
    return evaluate_ensembles(_Noisy(), _Split(), list("abcd"), EvaluationSettings(samples=3, steps=1)).summary


def test_objectives_are_the_registry(summary):
    assert METRICS == OBJECTIVES and set(OBJECTIVES) <= set(SUMMARY_METRICS) <= set(summary)
    assert set(SUMMARY_METRICS) <= set(TRIAL_SCHEMA)


@pytest.mark.parametrize("metric", sorted(OBJECTIVES))
def test_every_objective_flows_from_evaluation_to_row_and_report(metric, summary):
    raw = yaml.safe_load((REPO / "studies" / "smoke.yaml").read_text())
    spec = parse_spec({**raw, "objectives": [{"metric": metric}]})
    row = trial_frame({"study": "s", "trial_id": "t", **summary}, spec.parameter_columns()).row(0, named=True)
    reported = objective_values(row, spec)
    assert list(reported) == [metric] and math.isfinite(reported[metric])
    assert spec.objectives[0].mode == OBJECTIVES[metric]


class _Constant(_Noisy):
    def sample(self, images, samples, steps, generator=None):
        return Ensemble(torch.full((samples, *images.shape), 0.25))


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_soft_brier_against_the_annotator_frequency_map_by_hand(batch):
    settings = EvaluationSettings(samples=2, steps=1, batch_size=batch)
    summary = evaluate_ensembles(_Constant(), _Split(), list("abcd"), settings).summary
    # frequency 1 on image 0's 9 pixels, 0.5 on image 1's 4 pixels (one of two annotators), 0 elsewhere
    expected = (9 * 0.75**2 + 4 * 0.25**2 + (256 - 13) * 0.25**2) / 256
    assert summary["brier_soft"] == pytest.approx(expected, rel=1e-9)
    majority = (13 * 0.75**2 + (256 - 13) * 0.25**2) / 256  # majority vote: ≥ half of 2 annotators
    assert summary["brier"] == pytest.approx(majority, rel=1e-9)


def test_a_stopped_trial_stays_pruned_whichever_side_writes_last(tmp_path):
    """Stopping a trial removes its Train workers first; the trial may record that as a failure
    before or after the driver marks it pruned. Either order ends `pruned`."""
    from platform.spec import load_spec
    from platform.trial_rows import TrialRows, mark_pruned

    import polars as pl

    from tests.conftest import write_spec

    spec = load_spec(write_spec(tmp_path / "s.yaml", name="s", pruning={"kind": "asha", "every": 10}))
    last = {"stage": "diffusion", "step": 10, "val_dice_nonempty": 0.1}
    for order in ("trial first", "driver first"):
        results = tmp_path / order
        rows = TrialRows.start(spec, results, "abc", {"model.wce_weight": 5.0}, {"tune_trial_id": "abc"})
        if order == "trial first":
            rows.failed({}, "ActorDiedError: placement group removed")
        assert mark_pruned(spec, results, "abc", last) == ["abc"]
        rows.failed({}, "ActorDiedError: placement group removed")
        row = pl.read_parquet(results / "trials" / "abc.parquet").row(0, named=True)
        assert row["status"] == "pruned" and row["failure"].startswith("pruned by asha at diffusion step 10"), order


def test_a_trial_id_that_looks_like_a_number_names_its_run(tmp_path):
    """Tune ids are hex: 6e695544 is also a float literal (inf), and Hydra would read it as one."""
    from platform.spec import load_spec
    from platform.trial import TrialContext, trial_config

    from tests.conftest import write_spec

    spec = load_spec(write_spec(tmp_path / "s.yaml", name="s"))
    context = TrialContext(spec, str(tmp_path / "results" / "s"), str(tmp_path / "prepared"), "", "")
    for trial_id in ("6e695544", "12345678", "0e000001-r1"):
        assert trial_config(context, {}, trial_id).train.run_name == trial_id
