"""Exponential moving averages of a network's weights, for the denoiser and the segmenters."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ema_with_warmup(decay: float):
    """EMA whose decay ramps up as (1 + n)/(10 + n): short CPU runs still sample from trained weights."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        d = min(decay, float((1 + num_averaged) / (10 + num_averaged)))
        return d * averaged + (1 - d) * current

    return average


def moving_average(module: nn.Module, decay: float) -> AveragedModel:
    """A copy of `module` that `update_parameters(module)` moves towards it after each step."""
    averaged = AveragedModel(module, avg_fn=ema_with_warmup(decay), use_buffers=True)
    averaged.requires_grad_(False)  # never trained: keeps it out of any optimiser given .parameters()
    return averaged
