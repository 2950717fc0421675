"""The training loop of one run: the stages a model declares (models/stages.py), in order, with resume.

No command line and no Ray here: `platform.train` (one process) and Ray Train workers call `fit`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from platform.build import build_model, model_from_checkpoint, stage_inputs
from platform.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from platform.config_types import Config
from platform.data.loader import PreparedSplit
from platform.errors import UsageError
from platform.stage_store import StageStore, code_version, stage_key

import numpy as np
import torch
from torch import nn

from models.losses import SegmentationLoss, adaptive_wce_weight
from models.stages import Stage, StageLosses

# (stage, step, total steps, latest loss, images per second, validation values of this step if any)
ProgressFn = Callable[[str, int, int, float, float, dict[str, float]], None]


@dataclass
class RunState:
    """What a run has achieved so far; saved in every checkpoint."""

    stages_done: list[str] = field(default_factory=list)
    stage: str = ""
    step: int = 0
    latent_scale: float = 1.0
    wce_weight: float = 0.0
    metrics: list[dict] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # stages loaded from the stage store, not trained
    reused_s: float = 0.0  # the training time those stages took where they were trained
    fitted: dict[str, dict[str, float]] = field(default_factory=dict)  # per stage: what its after_stage learned


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
    validation: Callable[[nn.Module], float] | None = None,
    held_out: PreparedSplit | None = None,
) -> nn.Module:
    """Train the model's stages (`model.stages`, those `train.stage` selects), resuming from `run_dir`.

    With world_size > 1 (an initialised torch.distributed group, e.g. Ray Train workers),
    gradients are averaged across ranks every step, each rank draws its own batches and only
    rank 0 writes the checkpoint. `progress` runs after each logged step's checkpoint is on disk.
    Returns the trained model (on CPU or CUDA as configured, in eval mode). Raises
    FloatingPointError when a loss becomes NaN or infinite, UsageError when a selected stage
    needs a stage this run folder has not finished.

    With `train.stage_store` set, a stage whose inputs (`stage_key`) match a finished entry of
    that store is loaded instead of trained, and a stage trained here is added to it.
    `validation` (e.g. QuickValidation), with `train.val_every` > 0, scores the model every that
    many steps of the last stage: `val_dice_nonempty` and `val_round` in the metrics and progress.
    `held_out` (the validation split, say): what stages with fits_on="held_out" fit their
    end-of-stage values on (the prior's start-mask threshold); without it, the training split."""
    torch.manual_seed(config.train.seed)
    device = choose_device(config.train.device)
    state, model, optimizer_state = _restore(config, run_dir)
    model.to(device)
    if not state.wce_weight:
        state.wce_weight = resolve_wce_weight(config, train)
    losses = StageLosses(SegmentationLoss(state.wce_weight, config.model.dice_weight), config.model.kl_weight)
    stages = model.stages(losses)  # type: ignore[operator]
    store = StageStore(Path(config.train.stage_store)) if config.train.stage_store else None
    keys = _stage_keys(config, stages, state.wce_weight, train, held_out) if store else {}
    for stage in selected_stages(stages, config.train.stage):
        if stage.name in state.stages_done:
            continue
        missing = [r for r in stage.requires if r not in state.stages_done]
        if missing:
            raise UsageError(
                f"{run_dir / CHECKPOINT}: stage {stage.name} needs {', '.join(missing)} finished in this run folder "
                f"(train.stage={config.train.stage})"
            )
        resume = optimizer_state if state.stage == stage.name else None
        steps = sum(getattr(config.train, key) for key in stage.budget)

        def train_here(stage: Stage = stage, steps: int = steps, resume: dict | None = resume) -> None:
            check = validation if stage is stages[-1] and config.train.val_every > 0 else None
            _train_stage(
                config, model, train, stage, steps, state, resume, run_dir, device, progress, rank, world_size, check
            )
            _finish_stage(run_dir, model, state, stage, _fitting_split(stage, train, held_out), device, rank)

        if store is None:
            train_here()
        else:
            _obtain_stage(store, keys[stage.name], stage, model, state, train_here, run_dir, rank, world_size)
    return model.eval()


def _fitting_split(stage: Stage, train: PreparedSplit, held_out: PreparedSplit | None) -> PreparedSplit:
    """Where `stage` fits its end-of-stage values: the held-out split if it asks for one and has one."""
    return held_out if stage.fits_on == "held_out" and held_out is not None else train


def _stage_keys(
    config: Config, stages: list[Stage], wce_weight: float, train: PreparedSplit, held_out: PreparedSplit | None
) -> dict[str, str]:
    """Each stage's content address: its inputs, the prepared data, the code, its upstream keys."""
    shared = {"data": train.identity(), "code": code_version()}
    keys: dict[str, str] = {}
    for stage in stages:
        inputs = {**stage_inputs(config, stage.name, stage.budget, wce_weight), **shared}
        fitting = _fitting_split(stage, train, held_out)
        if fitting is not train:
            inputs["fitted_on"] = fitting.identity()
        keys[stage.name] = stage_key(stage.name, inputs, [keys[r] for r in stage.requires])
    return keys


def _obtain_stage(
    store: StageStore,
    key: str,
    stage: Stage,
    model: nn.Module,
    state: RunState,
    train_here: Callable[[], None],
    run_dir: Path,
    rank: int,
    world_size: int,
) -> None:
    """Load `stage` from the store when it is there, else train it and add it (under its lock).

    With several ranks, rank 0 holds the lock and tells the others whether to load or train."""
    from contextlib import nullcontext

    with store.claim(key) if rank == 0 else nullcontext(None) as entry:
        reuse = entry is not None
        if world_size > 1:
            import torch.distributed as dist

            decision = [reuse]
            dist.broadcast_object_list(decision, src=0)
            reuse = bool(decision[0])
            entry = entry if rank == 0 else (store.load(key) if reuse else None)
        if reuse and entry is not None:
            _apply_entry(model, state, stage, entry)
            if rank == 0:
                _save(run_dir, model, state, None)
            return
        tic = time.perf_counter()
        train_here()
        if rank == 0:
            store.save(key, _stage_entry(model, state, stage, run_dir.name, time.perf_counter() - tic))


def _stage_entry(model: nn.Module, state: RunState, stage: Stage, run_name: str, train_s: float) -> dict:
    return {
        "stage": stage.name,
        "weights": {k: v.detach().cpu() for k, v in model.state_dict().items() if k.startswith(stage.owns)},
        "values": state.fitted.get(stage.name, {}),
        "metrics": [m for m in state.metrics if m["stage"] == stage.name],
        "train_s": train_s,
        "trained_by": run_name,
    }


def _apply_entry(model: nn.Module, state: RunState, stage: Stage, entry: dict) -> None:
    """Load a stored stage into this run: its weights, learned values and curves."""
    unexpected = [k for k in entry["weights"] if not k.startswith(stage.owns)]
    if unexpected:
        raise UsageError(f"stage store entry for {stage.name} holds foreign weights ({unexpected[0]})")
    device = next(iter(model.state_dict().values())).device
    model.load_state_dict({k: v.to(device) for k, v in entry["weights"].items()}, strict=False)
    _record_fitted(state, stage.name, entry["values"])
    state.metrics.extend(entry["metrics"])
    state.stages_done.append(stage.name)
    state.reused.append(stage.name)
    state.reused_s += float(entry["train_s"])


def selected_stages(stages: list[Stage], selection: str) -> list[Stage]:
    """The stages `train.stage` asks for: all of them, or those of one part."""
    return [s for s in stages if selection in ("all", s.part)]


def _restore(config: Config, run_dir: Path) -> tuple[RunState, nn.Module, dict | None]:
    """The run so far (state, model, optimizer state mid-stage), or a fresh one."""
    path = run_dir / CHECKPOINT
    if not path.exists():
        return RunState(), build_model(config), None
    payload = load_checkpoint(path)
    return RunState(**payload["state"]), model_from_checkpoint(payload, config, path), payload.get("optimizer")


def _train_stage(
    config: Config,
    model: nn.Module,
    train: PreparedSplit,
    stage: Stage,
    steps: int,
    state: RunState,
    optimizer_state: dict | None,
    run_dir: Path,
    device: torch.device,
    progress: ProgressFn | None,
    rank: int = 0,
    world_size: int = 1,
    validation: Callable[[nn.Module], float] | None = None,
) -> None:
    model.train()
    stage.freeze()
    optimizer = torch.optim.AdamW(stage.parameters(), lr=config.train.lr, weight_decay=0.0)
    start = 0
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
        start = state.step
    stream = len(state.stages_done) if stage.stream is None else stage.stream
    rng = np.random.default_rng([config.train.seed, start, stream, rank])
    # The stage's own torch stream: the same whether earlier stages were trained or loaded
    seeds = np.random.SeedSequence([config.train.seed, start, stream])
    torch.manual_seed(int(seeds.generate_state(1)[0]))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    window, tic = [], time.perf_counter()
    for step in range(start + 1, steps + 1):
        for group in optimizer.param_groups:  # from the step alone, so a resumed stage continues the curve
            group["lr"] = stage_lr(config.train.lr, config.train.lr_schedule, step, steps)
        images, masks = train.batch(rng, config.train.batch_size, config.train.foreground_share, config.train.augment)
        loss = stage.loss(images.to(device), masks.to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage.name} loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world_size > 1:
            _average_gradients(params, world_size)
        optimizer.step()
        if stage.after_step is not None:
            stage.after_step()
        window.append(loss.item())
        checked: dict[str, float] = {}
        if validation is not None and step % config.train.val_every == 0:
            checked = {"val_dice_nonempty": validation(model), "val_round": step // config.train.val_every}
            stage.freeze()  # validation toggled eval/train mode: frozen modules go back to eval
        if step % config.train.log_every == 0 or step == steps or checked:
            elapsed = time.perf_counter() - tic
            ips = len(window) * config.train.batch_size / max(elapsed, 1e-9)
            state.metrics.append(
                {
                    "stage": stage.name,
                    "step": step,
                    "epoch": step * config.train.batch_size / len(train),
                    "loss": float(np.mean(window)),
                    "images_per_s": ips,
                    **checked,
                }
            )
            state.stage, state.step = stage.name, step
            if rank == 0:
                _save(run_dir, model, state, optimizer)
            if progress:
                progress(stage.name, step, steps, float(np.mean(window)), ips, checked)
            window, tic = [], time.perf_counter()


def _finish_stage(
    run_dir: Path,
    model: nn.Module,
    state: RunState,
    stage: Stage,
    fitting: PreparedSplit,
    device: torch.device,
    rank: int,
) -> None:
    """Learn the stage's end-of-stage values (the latent scale, the prior's threshold) on `fitting`; mark it done."""
    if stage.after_stage is not None:
        images, masks = fitting.fitting_sample()
        _record_fitted(state, stage.name, stage.after_stage(images.to(device), masks.to(device)))
    state.stages_done.append(stage.name)
    state.stage, state.step = "", 0
    if rank == 0:
        _save(run_dir, model, state, None)


def _record_fitted(state: RunState, stage_name: str, values: dict[str, float]) -> None:
    """Keep a stage's end-of-stage values; the latent scale is also a RunState field (build_model's input)."""
    state.fitted[stage_name] = dict(values)
    if "latent_scale" in values:
        state.latent_scale = float(values["latent_scale"])


def stage_lr(lr: float, schedule: str, step: int, steps: int) -> float:
    """The learning rate of step `step` (1-based) of a `steps`-step stage: constant, or nnU-Net's
    poly decay lr·(1 − (step − 1)/steps)^0.9, which ends near zero so the last weights are not
    the noisy ones of a full-size step."""
    if schedule == "constant":
        return lr
    return lr * (1 - (step - 1) / steps) ** 0.9


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


def _save(run_dir: Path, model: nn.Module, state: RunState, optimizer: torch.optim.Optimizer | None) -> None:
    fields = {k: getattr(state, k) for k in RunState.__dataclass_fields__}
    payload = {"model": model.state_dict(), "state": fields}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    save_checkpoint(run_dir / CHECKPOINT, payload)
