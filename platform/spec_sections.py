"""The sections of a study spec as typed, frozen dataclasses (platform/spec.py reads and checks them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Parameter:
    """One searched config key. `when` makes it conditional: {other key: required value}."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str


PRUNING_METRICS = {"val_dice_nonempty": "max", "loss": "min"}  # what trials report while they train


@dataclass(frozen=True)
class Pruning:
    """Stop weak trials early. The default signal is `val_dice_nonempty`: every `every` steps of the
    last stage, one mask per image sampled with `steps` DDIM steps on the first `images` non-empty
    validation slices. `loss` (the training loss) is kept for comparison; it prunes nothing useful."""

    kind: str = "none"  # none | asha | median
    grace_period: int = 1  # validation rounds (loss: logged steps) before a trial may be stopped
    metric: str = "val_dice_nonempty"
    every: int = 50
    images: int = 8
    steps: int = 5

    @property
    def mode(self) -> str:
        return PRUNING_METRICS[self.metric]

    @property
    def time_attr(self) -> str:
        return "val_round" if self.metric == "val_dice_nonempty" else "training_iteration"

    def overrides(self) -> list[str]:
        """The train settings that make trials report the pruning metric."""
        if self.kind == "none" or self.metric != "val_dice_nonempty":
            return []
        return [f"train.val_every={self.every}", f"train.val_images={self.images}", f"train.val_steps={self.steps}"]


@dataclass(frozen=True)
class Evaluation:
    samples: int = 8
    steps: int = 20
    images: int = 64
    split: str = "val"
    border_radius: int = 8


@dataclass(frozen=True)
class Resources:
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    trial_cpus: float = 0.1  # the Tune trial itself mostly waits on its Train workers
    concurrent_trials: int = 1
    max_failures: int = 1  # worker restarts per trial, from the last checkpoint
    placement: str = "pack"  # pack: workers share a node when they fit; spread: one per node if possible
