"""Finished stages reused across runs: keyed by their inputs, loaded not retrained, safe under kills and races."""

import multiprocessing
import os
import signal
import time
from pathlib import Path
from platform.build import STAGE_READS, stage_inputs
from platform.checkpoint import load_checkpoint
from platform.data.loader import PreparedSplit
from platform.stage_store import StageStore
from platform.training import fit

import pytest
import torch


def _fit(config, name: str, store: Path | None):
    config.train.run_name = name
    config.train.stage_store = str(store) if store else ""
    train = PreparedSplit.open(Path(config.train.prepared_dir) / "synthetic", "train")
    run_dir = Path(config.train.runs_dir) / name
    model = fit(config, train, run_dir)
    return model, load_checkpoint(run_dir / "checkpoint.pt")["state"]


def _trained(store: Path) -> dict[str, int]:
    """How many entries of each stage the store holds (each one trained once, somewhere)."""
    counts: dict[str, int] = {}
    for key in StageStore(store).keys():
        stage = StageStore(store).load(key)["stage"]
        counts[stage] = counts.get(stage, 0) + 1
    return counts


def test_a_diffusion_only_change_reuses_the_autoencoder_and_prior_exactly(tiny, tmp_path):
    store = tmp_path / "stages"
    _, first = _fit(tiny(), "a", store)
    assert first["reused"] == [] and _trained(store) == {"autoencoder": 1, "prior": 1, "diffusion": 1}
    model, second = _fit(tiny("train.diffusion_steps=6"), "b", store)
    assert second["reused"] == ["autoencoder", "prior"] and second["reused_s"] > 0
    assert _trained(store) == {"autoencoder": 1, "prior": 1, "diffusion": 2}
    assert [m["step"] for m in second["metrics"] if m["stage"] == "autoencoder"] == [2, 4]  # its curves came along
    assert second["fitted"] == first["fitted"] and set(first["fitted"]) == {"autoencoder", "prior"}
    assert second["latent_scale"] == first["latent_scale"] == first["fitted"]["autoencoder"]["latent_scale"]
    assert model.fitted_prior_threshold.item() == pytest.approx(first["fitted"]["prior"]["fitted_prior_threshold"])
    # the same run without the store trains every stage itself, to the same weights
    alone, third = _fit(tiny("train.diffusion_steps=6"), "c", None)
    assert third["reused"] == []
    reference = alone.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def test_an_autoencoder_change_trains_a_new_autoencoder(tiny, tmp_path):
    store = tmp_path / "stages"
    _fit(tiny(), "a", store)
    _, other = _fit(tiny("model.latent_channels=2"), "b", store)
    assert "autoencoder" not in other["reused"] and other["reused"] == ["prior"]  # the prior never reads it
    assert _trained(store)["autoencoder"] == 2


def test_an_identical_run_trains_nothing(tiny, tmp_path):
    store = tmp_path / "stages"
    _fit(tiny(), "a", store)
    _, again = _fit(tiny(), "b", store)
    assert again["reused"] == ["autoencoder", "prior", "diffusion"]
    assert _trained(store) == {"autoencoder": 1, "prior": 1, "diffusion": 1}


def test_sampling_only_keys_do_not_change_the_diffusion_key(tiny):
    config, other = tiny("model.conditioning=cfg"), tiny("model.conditioning=cfg", "model.guidance_scale=3.0")
    assert stage_inputs(config, "diffusion", ("diffusion_steps",), 5.0) == stage_inputs(
        other, "diffusion", ("diffusion_steps",), 5.0
    )
    assert stage_inputs(config, "diffusion", (), 5.0) != stage_inputs(tiny(), "diffusion", (), 5.0)  # CFG trains


def test_the_start_threshold_is_an_input_of_the_prior_stage_that_fits_the_spread_around_it(tiny):
    def prior(*overrides):
        return stage_inputs(tiny(*overrides), "prior", ("prior_steps",), 5.0)

    assert prior("model.prior_threshold=0.5") != prior("model.prior_threshold=0.4")
    assert prior("model.prior_threshold_spread=1.0") == prior("model.prior_threshold_spread=2.0")


def test_the_training_windows_are_an_input_of_both_segmenter_stages(tiny):
    for stage, budget in (("prior", ("prior_steps",)), ("segmenter", ("diffusion_steps",))):
        whole, windows = (stage_inputs(tiny(f"model.segmenter_crop={side}"), stage, budget, 5.0) for side in (0, 16))
        assert whole != windows, stage


@pytest.mark.parametrize(
    "stage,change",
    [
        ("autoencoder", "model.denoiser_channels=[8,16]"),
        ("autoencoder", "model.prior_channels=[16,32]"),
        ("autoencoder", "model.segmenter_crop=16"),
        ("prior", "model.latent_channels=2"),
        ("prior", "model.encoder_channels=[8,16,16]"),
        ("image_autoencoder", "model.wce_weight=20"),
    ],
)
def test_a_key_a_stage_does_not_read_leaves_its_start_and_loss_unchanged(tiny, stage, change):
    """What makes reuse exact: the stage's initial weights and loss ignore keys outside STAGE_READS."""
    from platform.build import build_model

    from models.losses import SegmentationLoss
    from models.stages import StageLosses

    base = ["model.image_encoder_init=autoencoder"]
    a, b = tiny(*base), tiny(*base, change)
    key = change.split("=")[0]
    assert key not in STAGE_READS[stage]
    models = [build_model(c) for c in (a, b)]
    losses = [StageLosses(SegmentationLoss(c.model.wce_weight or c.data.wce_weight, 1.0)) for c in (a, b)]
    stages = [next(s for s in m.stages(loss) if s.name == stage) for m, loss in zip(models, losses, strict=True)]
    owned = [
        {k: v for k, v in m.state_dict().items() if k.startswith(s.owns)} for m, s in zip(models, stages, strict=True)
    ]
    assert owned[0].keys() == owned[1].keys() and all(torch.equal(owned[0][k], owned[1][k]) for k in owned[0])
    images, masks = torch.rand(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    values = []
    for s in stages:
        torch.manual_seed(0)
        values.append(s.loss(images, masks).item())
    assert values[0] == values[1]


def test_a_failed_write_leaves_nothing_loadable(tmp_path, monkeypatch):
    store = StageStore(tmp_path)

    def dies_midway(payload, file):
        Path(file).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(Exception, match="No space left"):
        store.save("k", {"stage": "autoencoder"})
    assert store.load("k") is None and store.keys() == []
    (tmp_path / "k.pt").write_bytes(b"PK\x03\x04 truncated by a crash")  # even a torn file is never loaded
    assert store.load("k") is None


def _hold_lock(root: str, ready: str) -> None:
    with StageStore(Path(root)).claim("k"):
        Path(ready).touch()
        time.sleep(60)


def test_a_killed_holder_releases_its_lock(tmp_path):
    ready = tmp_path / "ready"
    holder = multiprocessing.get_context("spawn").Process(target=_hold_lock, args=(str(tmp_path), str(ready)))
    holder.start()
    deadline = time.time() + 60
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    tic = time.time()
    with StageStore(tmp_path).claim("k") as entry:
        assert entry is None
    assert time.time() - tic < 5


def _train_once(root: str, log: str) -> None:
    store = StageStore(Path(root))
    with store.claim("k") as entry:
        if entry is None:
            with open(log, "a") as f:
                f.write(f"{os.getpid()}\n")
            time.sleep(1.0)  # training
            store.save("k", {"stage": "autoencoder", "by": os.getpid()})


def test_concurrent_runs_wait_for_the_one_training_a_stage(tmp_path):
    log = tmp_path / "trained.txt"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_train_once, args=(str(tmp_path), str(log))) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert len(log.read_text().split()) == 1
    assert StageStore(tmp_path).load("k")["by"] == int(log.read_text())
