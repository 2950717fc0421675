"""The training command end to end on a tiny synthetic set: run folder, resume, checkpoint round trip."""

import subprocess
import sys
from platform.build import build_model
from platform.checkpoint import load_checkpoint, save_checkpoint
from platform.data.loader import PreparedSplit
from platform.errors import UsageError
from platform.train import run
from platform.training import _stage_keys, fit

import polars as pl
import pytest
import torch

from models.losses import SegmentationLoss
from models.medseglatdiff import MedSegLatDiff
from models.stages import StageLosses
from models.thresholds import best_threshold
from tests.conftest import REPO


@pytest.mark.parametrize("kind", ["medseglatdiff", "pixel_diffusion", "unet"])
def test_run_writes_config_metrics_checkpoint_and_summary(tiny, kind):
    from rich.console import Console

    config = tiny(f"model={kind}")
    summary = run(config, Console(quiet=True))
    run_dir = config.train.runs_dir + "/" + summary["run_dir"].split("/")[-1]
    metrics = pl.read_parquet(f"{run_dir}/metrics.parquet")
    assert (
        set(metrics["stage"])
        == {
            "medseglatdiff": {"autoencoder", "prior", "diffusion"},
            "pixel_diffusion": {"diffusion"},
            "unet": {"segmenter"},
        }[kind]
    )
    assert metrics["loss"].is_finite().all() and (metrics["images_per_s"] > 0).all()
    assert 0.0 <= summary["val_dice"] <= 1.0 and summary["val_images"] > 0
    assert "kind: " + kind in open(f"{run_dir}/config.yaml").read()


def test_checkpoint_round_trip_and_resume_skips_done_stages(tiny, tmp_path):
    config = tiny()
    train = PreparedSplit.open(tmp_path / "prepared" / "synthetic", "train")
    model = fit(config, train, tmp_path / "run")
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert payload["state"]["stages_done"] == ["autoencoder", "prior", "diffusion"]
    assert payload["state"]["latent_scale"] > 0 and payload["state"]["wce_weight"] == 5.0
    rebuilt = build_model(config, payload["state"]["latent_scale"])
    rebuilt.load_state_dict(payload["model"])
    for (name, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    before = (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns
    fit(config, train, tmp_path / "run")  # everything done: nothing retrained, nothing rewritten
    assert (tmp_path / "run" / "checkpoint.pt").stat().st_mtime_ns == before


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"model": {"w": torch.ones(3)}})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"c\.pt: unreadable checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


def test_train_command_rejects_impossible_config_with_status_2():
    result = subprocess.run(
        [sys.executable, "-m", "platform.train", "model.guidance_scale=3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "model.guidance_scale" in result.stdout + result.stderr


def test_image_autoencoder_pretrains_the_condition_encoder(tiny, tmp_path):
    # Without augmentation: the intensity jitter makes 40 steps too few to show the loss falling.
    config = tiny(
        "model.image_encoder_init=autoencoder", "train.image_ae_steps=40", "train.log_every=10", "train.augment=false"
    )
    train = PreparedSplit.open(tmp_path / "prepared" / "synthetic", "train")
    fit(config, train, tmp_path / "run")
    metrics = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["state"]["metrics"]
    stages = [m["stage"] for m in metrics]
    assert stages.index("autoencoder") < stages.index("image_autoencoder") < stages.index("diffusion")
    losses = [m["loss"] for m in metrics if m["stage"] == "image_autoencoder"]
    assert losses[-1] < 0.7 * losses[0]  # it learns to reconstruct images


def _rank(rank: int, world: int, port: int, out) -> None:
    from platform.training import _average_gradients

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    params = [torch.zeros(3, requires_grad=True), torch.zeros(2, 2, requires_grad=True)]
    params[0].grad = torch.full((3,), float(rank + 1))
    params[1].grad = torch.full((2, 2), float(10 * (rank + 1)))
    _average_gradients(params, world)
    out.put((rank, params[0].grad.tolist(), params[1].grad.tolist()))
    dist.destroy_process_group()


def test_gradients_are_averaged_across_ranks():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, out)) for r in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    for _, first, second in results:
        assert first == [1.5, 1.5, 1.5] and second == [[15.0, 15.0], [15.0, 15.0]]


def test_poly_schedule_decays_from_lr_towards_zero_and_constant_stays():
    from platform.training import stage_lr

    poly = [stage_lr(0.002, "poly", step, 100) for step in range(1, 101)]
    assert poly[0] == 0.002 and all(a > b for a, b in zip(poly, poly[1:], strict=False))
    assert 0 < poly[-1] < 0.002 * 0.02  # (1/100)^0.9 of the rate at the last step
    assert poly[49] == pytest.approx(0.002 * 0.51**0.9)
    assert {stage_lr(0.002, "constant", step, 100) for step in range(1, 101)} == {0.002}


def test_poly_schedule_is_used_by_the_optimiser(tiny, monkeypatch):
    import platform.training as training

    from rich.console import Console

    rates = []
    step = torch.optim.AdamW.step
    monkeypatch.setattr(
        torch.optim.AdamW, "step", lambda self, *a: rates.append(self.param_groups[0]["lr"]) or step(self, *a)
    )
    run(
        tiny("model=unet", "train.ae_steps=0", "train.diffusion_steps=6", "train.lr_schedule=poly"), Console(quiet=True)
    )
    assert rates == [training.stage_lr(0.002, "poly", s, 6) for s in range(1, 7)] and rates[-1] < rates[0] / 4


def _prior_threshold_on(model, split) -> float:
    """The threshold fitted on `split` for the map sampling uses (averaged over views: model.tta)."""
    images, masks = split.fitting_sample()
    with torch.no_grad():
        return best_threshold(model._prior_probs(images, model.prior_tta), masks)


def test_the_prior_threshold_is_fitted_on_the_held_out_split_when_one_is_given(tiny, tmp_path, monkeypatch):
    config = tiny()
    prepared = tmp_path / "prepared" / "synthetic"
    train, val = PreparedSplit.open(prepared, "train"), PreparedSplit.open(prepared, "val")
    model = fit(config, train, tmp_path / "held-out", held_out=val)
    fitted = load_checkpoint(tmp_path / "held-out" / "checkpoint.pt")["state"]["fitted"]["prior"]
    assert model.prior_tta  # the YAML default: sampling uses the fits of the averaged map
    assert fitted["fitted_prior_threshold_tta"] == _prior_threshold_on(model, val) == model.start_threshold
    seen = []  # which images each run's prior stage fitted on
    original = MedSegLatDiff._fit_prior_threshold
    monkeypatch.setattr(
        MedSegLatDiff,
        "_fit_prior_threshold",
        lambda self, images, masks: seen.append(images) or original(self, images, masks),
    )
    alone = fit(config, train, tmp_path / "train-only")
    again = fit(config, train, tmp_path / "held-out-again", held_out=val)
    assert torch.equal(seen[0], train.fitting_sample()[0]) and torch.equal(seen[1], val.fitting_sample()[0])
    assert alone.start_threshold == _prior_threshold_on(alone, train) and again.start_threshold == model.start_threshold
    stages = model.stages(StageLosses(SegmentationLoss(5.0, 1.0)))
    with_val, without = _stage_keys(config, stages, 5.0, train, val), _stage_keys(config, stages, 5.0, train, None)
    assert with_val["autoencoder"] == without["autoencoder"] and with_val["prior"] != without["prior"]


UNET_AS_TINY_PRIOR = ["model=unet", "model.encoder_channels=[8,16]", "train.ae_steps=0", "train.diffusion_steps=3"]


def test_under_one_seed_the_prior_trains_as_the_unet_baseline_does(tiny, tmp_path):
    """Same initial weights, same batches: a paired latent − UNet difference compares the models."""
    prepared = tmp_path / "prepared" / "synthetic"
    ldm_config = tiny("model.prior_channels=[8,16]", "train.prior_steps=3")
    unet_config = tiny(*UNET_AS_TINY_PRIOR)
    train = PreparedSplit.open(prepared, "train")
    assert build_model(ldm_config).prior.state_dict().keys() == build_model(unet_config).state_dict().keys()
    initial = build_model(unet_config).state_dict()
    for key, value in build_model(ldm_config).prior.state_dict().items():
        assert torch.equal(value, initial[key]), key
    ldm, unet = fit(ldm_config, train, tmp_path / "ldm"), fit(unet_config, train, tmp_path / "unet")
    trained = unet.state_dict()
    assert any(not torch.equal(trained[k], initial[k]) for k in initial)  # both trained, not left at their start
    for key, value in ldm.prior.state_dict().items():
        assert torch.equal(value, trained[key]), key
    other = fit(tiny(*UNET_AS_TINY_PRIOR, "train.seed=1"), train, tmp_path / "seed1")
    assert any(not torch.equal(other.state_dict()[k], trained[k]) for k in trained)  # another seed, another start


def test_the_training_command_prints_the_start_masks_marking_what_was_fitted(tiny):
    from platform.build import build_model
    from platform.train import _sampling_start, _start_masks

    def summary(config):  # what `run` records of a trained model
        model = build_model(config)
        if getattr(model, "prior", None) is not None:
            model.fitted_prior_threshold_tta.fill_(0.65)
            model.fitted_prior_threshold_spread_tta.fill_(1.5)
            model.fitted_prior_threshold.fill_(0.7)
            model.fitted_prior_threshold_spread.fill_(2.5)
        return _sampling_start(model)

    configured = tiny("model.prior_threshold=0.5")
    assert _start_masks(configured, summary(configured)) == " · start threshold 0.50 · start spread 1.50 (fitted)"
    plain = tiny("model.tta=false")
    assert _start_masks(plain, summary(plain)) == " · start threshold 0.70 (fitted) · start spread 2.50 (fitted)"
    assert _start_masks(tiny("model=unet"), summary(tiny("model=unet"))) == ""
