"""Training loops of one run: autoencoder stage, diffusion stage (or the UNet), with resume.

No command line and no Ray here: `platform.train` (one process) and Ray Train workers call `fit`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from platform.build import build_model
from platform.checkpoint import load_checkpoint, save_checkpoint
from platform.config_types import Config
from platform.data.loader import PreparedSplit
from platform.errors import UsageError

import numpy as np
import torch
from torch import nn

from models.autoencoder import MaskAutoencoder, kl_divergence, latent_scale_factor
from models.losses import SegmentationLoss, adaptive_wce_weight

# (stage, step, total steps, latest loss, images per second)
ProgressFn = Callable[[str, int, int, float, float], None]
CHECKPOINT = "checkpoint.pt"


@dataclass
class RunState:
    """What a run has achieved so far; saved in every checkpoint."""

    stages_done: list[str] = field(default_factory=list)
    stage: str = ""
    step: int = 0
    latent_scale: float = 1.0
    wce_weight: float = 0.0
    metrics: list[dict] = field(default_factory=list)


def choose_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available")
    return torch.device(name)


def resolve_wce_weight(config: Config, train: PreparedSplit) -> float:
    """model.wce_weight, else the adaptive background/foreground ratio, else the dataset's paper default."""
    if config.model.adaptive_wce:
        return adaptive_wce_weight(torch.from_numpy(np.asarray(train.masks)), config.model.adaptive_wce_max)
    return config.model.wce_weight if config.model.wce_weight is not None else config.data.wce_weight


def fit(
    config: Config,
    train: PreparedSplit,
    run_dir: Path,
    progress: ProgressFn | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> nn.Module:
    """Train every stage `config.train.stage` asks for, resuming from `run_dir/checkpoint.pt`.

    With world_size > 1 (an initialised torch.distributed group, e.g. Ray Train workers),
    gradients are averaged across ranks every step, each rank draws its own batches and only
    rank 0 writes the checkpoint. `progress` runs after each logged step's checkpoint is on disk.
    Returns the trained model (on CPU or CUDA as configured, in eval mode). Raises
    FloatingPointError when a loss becomes NaN or infinite."""
    torch.manual_seed(config.train.seed)
    device = choose_device(config.train.device)
    state, model, optimizer_state = _restore(config, run_dir)
    model.to(device)
    if not state.wce_weight:
        state.wce_weight = resolve_wce_weight(config, train)
    for stage, steps in _stages(config):
        if stage not in state.stages_done:
            resume = optimizer_state if state.stage == stage else None
            _train_stage(config, model, train, stage, steps, state, resume, run_dir, device, progress, rank, world_size)
    return model.eval()


def _stages(config: Config) -> list[tuple[str, int]]:
    t = config.train
    if config.model.kind == "unet":
        return [("segmenter", t.ae_steps + t.diffusion_steps)]  # same step budget as both stages
    stages = [("autoencoder", t.ae_steps)] if config.model.kind == "medseglatdiff" else []
    if config.model.image_encoder_init == "autoencoder":
        stages.append(("image_autoencoder", t.image_ae_steps))
    stages.append(("diffusion", t.diffusion_steps))
    wanted = {
        "all": {"autoencoder", "image_autoencoder", "diffusion"},
        "autoencoder": {"autoencoder"},
        "diffusion": {"image_autoencoder", "diffusion"},
    }
    return [(s, n) for s, n in stages if s in wanted[t.stage]]


def _restore(config: Config, run_dir: Path) -> tuple[RunState, nn.Module, dict | None]:
    """The run so far (state, model, optimizer state mid-stage), or a fresh one."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        if config.train.stage == "diffusion" and config.model.kind == "medseglatdiff":
            raise UsageError(f"{path}: train.stage=diffusion needs a trained autoencoder in this run folder")
        return RunState(), build_model(config), None
    payload = load_checkpoint(path)
    state = RunState(**payload["state"])
    return state, _model_from(payload, config, path), payload.get("optimizer")


def _train_stage(
    config: Config,
    model: nn.Module,
    train: PreparedSplit,
    stage: str,
    steps: int,
    state: RunState,
    optimizer_state: dict | None,
    run_dir: Path,
    device: torch.device,
    progress: ProgressFn | None,
    rank: int = 0,
    world_size: int = 1,
) -> None:
    model.train()
    params, loss_fn = _stage_objective(config, model, stage, state.wce_weight)
    optimizer = torch.optim.AdamW(params, lr=config.train.lr, weight_decay=0.0)
    start = 0
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        start = state.step
    rng = np.random.default_rng([config.train.seed, start, len(state.stages_done), rank])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    window, tic = [], time.perf_counter()
    for step in range(start + 1, steps + 1):
        images, masks = train.batch(rng, config.train.batch_size)
        loss = loss_fn(images.to(device), masks.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage} loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world_size > 1:
            _average_gradients(params, world_size)
        optimizer.step()
        if stage == "diffusion":
            model.update_ema()  # type: ignore[operator]
        window.append(loss.item())
        if step % config.train.log_every == 0 or step == steps:
            elapsed = time.perf_counter() - tic
            ips = len(window) * config.train.batch_size / max(elapsed, 1e-9)
            state.metrics.append(
                {
                    "stage": stage,
                    "step": step,
                    "epoch": step * config.train.batch_size / len(train),
                    "loss": float(np.mean(window)),
                    "images_per_s": ips,
                }
            )
            state.stage, state.step = stage, step
            if rank == 0:
                _save(run_dir, model, state, optimizer)
            if progress:
                progress(stage, step, steps, float(np.mean(window)), ips)
            window, tic = [], time.perf_counter()
    if stage == "autoencoder":
        state.latent_scale = latent_scale_factor(model.codec.eval(), train.all_masks()[:512].to(device))  # type: ignore
        model.latent_scale.fill_(state.latent_scale)  # type: ignore[union-attr]
    state.stages_done.append(stage)
    state.stage, state.step = "", 0
    if rank == 0:
        _save(run_dir, model, state, None)


def _average_gradients(params: list[torch.Tensor], world_size: int) -> None:
    """Data parallelism as DDP does it: every rank steps with the mean gradient of all ranks.

    One all-reduce of all gradients flattened together: small models have ~100 parameter tensors,
    and one collective per tensor costs more than the step itself on CPU (gloo)."""
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _stage_objective(config: Config, model: nn.Module, stage: str, wce_weight: float):
    segmentation = SegmentationLoss(wce_weight, config.model.dice_weight)
    if stage == "segmenter":
        return model.parameters(), lambda images, masks: segmentation(model(images), masks)
    if stage == "autoencoder":
        codec: MaskAutoencoder = model.codec  # type: ignore[assignment]

        def autoencoder_loss(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
            logits, mu, sigma = codec(masks)
            return segmentation(logits, masks) + config.model.kl_weight * kl_divergence(mu, sigma)

        return codec.parameters(), autoencoder_loss
    if stage == "image_autoencoder":
        params = [*model.net.image_encoder.parameters(), *model.image_decoder.parameters()]  # type: ignore
        return params, lambda images, masks: model.image_reconstruction_loss(images)  # type: ignore[operator]
    model.codec.requires_grad_(False)  # type: ignore[union-attr]
    model.codec.eval()  # type: ignore[union-attr]
    return model.net.parameters(), model.diffusion_loss  # type: ignore[union-attr]


def _save(run_dir: Path, model: nn.Module, state: RunState, optimizer: torch.optim.Optimizer | None) -> None:
    fields = {k: getattr(state, k) for k in RunState.__dataclass_fields__}
    payload = {"model": model.state_dict(), "state": fields}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    save_checkpoint(run_dir / CHECKPOINT, payload)


def load_trained(run_dir: Path, config: Config) -> tuple[nn.Module, dict]:
    """The model of a finished run folder (eval mode, CPU) and its saved run state."""
    payload = load_checkpoint(run_dir / CHECKPOINT)
    return _model_from(payload, config, run_dir / CHECKPOINT).eval(), payload["state"]


def _model_from(payload: dict, config: Config, path: Path) -> nn.Module:
    """Build the model `config` describes and load the checkpoint's weights; UsageError on mismatch."""
    model = build_model(config, payload["state"]["latent_scale"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise UsageError(f"{path}: checkpoint does not match this model config ({str(exc)[:200]})") from None
    return model
