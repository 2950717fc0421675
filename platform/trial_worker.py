"""The Ray Train worker loop of a trial, and what its workers leave in the run folder.

Each rank writes `worker-<rank>.json` (node id, pid, a deterministic failure if any); rank 0
counts attempts in `attempts.txt`, so the trial can tell restarts and failures apart."""

from __future__ import annotations

import json
import os
from pathlib import Path
from platform.config_types import Config
from typing import Any

ATTEMPTS = "attempts.txt"


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train worker loop: resume from the run folder, train, report each logged step."""
    from platform.data.loader import PreparedSplit
    from platform.training import fit

    import ray.train
    import torch
    import torch.distributed as dist

    config: Config = loop_config["config"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(loop_config["threads"])))
    run_dir = Path(config.train.runs_dir) / (config.train.run_name or "run")
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        attempts = run_dir / ATTEMPTS
        attempts.write_text(str(int(attempts.read_text()) + 1 if attempts.exists() else 1))
    train = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "train")
    node = ray.get_runtime_context().get_node_id()
    outcome = run_dir / f"worker-{rank}.json"
    outcome.write_text(json.dumps({"node_id": node, "pid": os.getpid(), "failure": ""}))

    def report(stage: str, step: int, total: int, loss: float, ips: float, checked: dict[str, float]) -> None:
        ray.train.report({"stage": stage, "step": step, "loss": loss, "images_per_s": ips, "node_id": node, **checked})

    val = PreparedSplit.open(Path(config.train.prepared_dir) / config.data.name, "val")
    validation = None
    if config.train.val_every > 0 and rank == 0:  # only rank 0's reports reach Tune
        from platform.evaluation.quick import QuickValidation

        validation = QuickValidation(val, config.train.val_images, config.train.val_steps, config.train.seed)
    try:
        world_size = world if world > 1 and dist.is_initialized() else 1
        fit(config, train, run_dir, report, rank, world_size, validation, held_out=val)
    except FloatingPointError as exc:  # deterministic: restarting the workers would fail the same way
        outcome.write_text(json.dumps({"node_id": node, "pid": os.getpid(), "failure": str(exc)}))


def worker_outcome(run_dir: Path) -> dict[str, str]:
    """Node ids of all ranks and the first failure any rank recorded (files in the run folder)."""
    outcomes = [json.loads(p.read_text()) for p in sorted(run_dir.glob("worker-*.json"))]
    return {
        "node_ids": ",".join(sorted({o["node_id"] for o in outcomes})),
        "failure": next((o["failure"] for o in outcomes if o["failure"]), ""),
    }


def restarts(run_dir: Path) -> int:
    """How many times the workers were restarted (attempts − 1)."""
    attempts = run_dir / ATTEMPTS
    return int(attempts.read_text()) - 1 if attempts.exists() else 0
