"""The segmenters' moving average: kept while their stage trains, adopted when it ends, never trained."""

from platform.build import build_model, load_trained, stage_inputs
from platform.checkpoint import load_checkpoint
from platform.config import config_to_yaml, load_config, load_run_config
from platform.data.loader import PreparedSplit
from platform.errors import ConfigError
from platform.training import fit

import pytest
import torch

from models.unet import UNetSegmenter
from tests.conftest import TINY


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_the_average_is_the_hand_computed_ema_of_the_steps():
    torch.manual_seed(0)
    segmenter = UNetSegmenter(1, [4, 8], weight_average=0.6)
    steps = []
    for _ in range(4):
        with torch.no_grad():
            for p in segmenter.unet.parameters():
                p.add_(torch.randn_like(p))
        steps.append(_weights(segmenter.unet))
        segmenter.update_average()
    # AveragedModel takes the first update as is, then averages with decay min(0.6, (1 + n)/(10 + n)), n = 1, 2, 3
    expected = steps[0]
    for n, current in enumerate(steps[1:], start=1):
        d = min(0.6, (1 + n) / (10 + n))
        expected = [d * e + (1 - d) * c for e, c in zip(expected, current, strict=True)]
    segmenter.adopt_average()
    for a, e in zip(_weights(segmenter.unet), expected, strict=True):
        torch.testing.assert_close(a, e)


def test_the_optimiser_never_sees_the_average():
    segmenter = UNetSegmenter(1, [4, 8], weight_average=0.9)
    trained = {id(p) for p in segmenter.trained_parameters()}
    assert trained == {id(p) for p in segmenter.unet.parameters()}
    assert not any(p.requires_grad for p in segmenter.averaged.parameters())
    plain = UNetSegmenter(1, [4, 8])
    assert plain.averaged is None and not any(k.startswith("averaged.") for k in plain.state_dict())


@pytest.mark.parametrize("kind", ["unet", "medseglatdiff"])
def test_a_trained_segmenter_holds_its_average(tiny, tmp_path, kind):
    prior = ["model.prior=true"] if kind != "unet" else []
    config = tiny(f"model={kind}", "model.segmenter_ema_decay=0.9", *prior)
    train = PreparedSplit.open(tmp_path / "prepared" / "synthetic", "train")
    model = fit(config, train, tmp_path / "run")
    segmenter = model if kind == "unet" else model.prior
    for a, b in zip(segmenter.unet.parameters(), segmenter.averaged.module.parameters(), strict=True):
        assert torch.equal(a, b)
    # the same run without averaging trains the same steps to other weights: the average is what changed
    plain_config = tiny(f"model={kind}", "model.segmenter_ema_decay=0", *prior)
    plain = fit(plain_config, train, tmp_path / "plain")
    plain_segmenter = plain if kind == "unet" else plain.prior
    assert not all(
        torch.equal(a, b) for a, b in zip(segmenter.unet.parameters(), plain_segmenter.unet.parameters(), strict=True)
    )
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    rebuilt = build_model(config, payload["state"]["latent_scale"])
    rebuilt.load_state_dict(payload["model"])  # the average is part of the checkpoint


def test_the_decay_is_an_input_of_both_segmenter_stages_only(tiny):
    for stage, budget in (("prior", ("prior_steps",)), ("segmenter", ("diffusion_steps",))):
        plain, averaged = (
            stage_inputs(tiny(f"model.segmenter_ema_decay={d}"), stage, budget, 5.0) for d in (0.0, 0.999)
        )
        assert plain != averaged, stage
    plain, averaged = (
        stage_inputs(tiny(f"model.segmenter_ema_decay={d}"), "autoencoder", ("ae_steps",), 5.0) for d in (0.0, 0.999)
    )
    assert plain == averaged


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_a_bad_decay_names_the_key(decay):
    with pytest.raises(ConfigError, match=r"model.segmenter_ema_decay.*\[0, 1\)"):
        load_config([*TINY, f"model.segmenter_ema_decay={decay}"])


def test_a_run_saved_before_the_key_existed_loads_without_an_average(tiny, tmp_path):
    config = tiny("model=unet", "model.segmenter_ema_decay=0")
    train = PreparedSplit.open(tmp_path / "prepared" / "synthetic", "train")
    fit(config, train, tmp_path / "run")
    saved = [line for line in config_to_yaml(config).splitlines() if "segmenter_ema_decay" not in line]
    (tmp_path / "run" / "config.yaml").write_text("\n".join(saved) + "\n")
    old = load_run_config(tmp_path / "run" / "config.yaml")
    assert old.model.segmenter_ema_decay == 0.0
    model, _ = load_trained(tmp_path / "run", old)
    assert model.averaged is None
