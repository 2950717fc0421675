"""Evaluate a segmenter's sample ensembles on a prepared split, batch by batch in bounded memory.

Per image: Dice/IoU of the ensemble-mean mask (threshold 0.5) against the majority vote and
against each annotator, mean per-sample Dice, GED and HM-IoU (N samples vs the annotators), the
shares of samples and of annotators marking anything, ECE/Brier/NLL of the confidence map. Per
dataset: the same pooled over all pixels (streamed), ECE restricted to the band near annotations,
and uncertainty–error correlation and overlap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from platform.data.loader import PreparedSplit
from platform.evaluation.calibration import CalibrationAccumulator, region_near_annotations
from platform.evaluation.distribution import generalized_energy_distance, hungarian_matched_iou
from platform.evaluation.registry import SUMMARY_METRICS
from platform.evaluation.uncertainty import UncertaintyErrorAccumulator
from platform.evaluation.values import (
    AGGREGATIONS,
    THRESHOLDS,
    aggregate,
    boundary_distances,
    choose_threshold,
    decompose,
    disagreement,
    failure_detection,
    normalized_cross_correlation,
    threshold_means,
)
from platform.metrics import dice, iou, majority_vote

import numpy as np
import polars as pl
import torch
from torch import nn

from models.ensemble import binary_entropy


@dataclass
class EvaluationSettings:
    samples: int = 16
    steps: int = 20
    batch_size: int = 8
    seed: int = 0
    bins: int = 10
    border_radius: int = 8
    max_images: int | None = None
    panels: int = 4  # images kept whole for confidence-map figures
    patch: int = 8  # sliding window of the patch-maximum uncertainty score
    # bits: the threshold-mean uncertainty score; None chooses it on the evaluated split (validation)
    uncertainty_threshold: float | None = None
    surface_tolerance: float = 2.0  # px: normalised surface Dice


@dataclass
class Evaluation:
    images: pl.DataFrame
    summary: dict[str, float]
    reliability: pl.DataFrame
    panels: list[dict[str, np.ndarray]] = field(default_factory=list)


@torch.no_grad()
def evaluate_ensembles(
    model: nn.Module,
    split: PreparedSplit,
    ids: list[str],
    settings: EvaluationSettings,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Sample `settings.samples` masks per image of `split` and measure them (see module docstring)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    count = len(split) if settings.max_images is None else min(len(split), settings.max_images)
    pooled, border = CalibrationAccumulator(settings.bins), CalibrationAccumulator(settings.bins)
    soft = CalibrationAccumulator(settings.bins)  # against the annotator frequency map
    uncertainty = UncertaintyErrorAccumulator()
    rows: list[dict] = []
    panels: list[dict[str, np.ndarray]] = []
    for start in range(0, count, settings.batch_size):
        stop = min(start + settings.batch_size, count)
        images = torch.from_numpy(np.array(split.images[start:stop])).to(device)
        annotations = torch.from_numpy(np.array(split.masks[start:stop])).bool()  # B×A×H×W
        ensemble = model.sample(images, settings.samples, settings.steps, generator)  # type: ignore[operator]
        probs, mean = ensemble.probs.cpu(), ensemble.mean.cpu()[:, 0]  # N×B×1×H×W, B×H×W
        consensus = majority_vote(annotations)[:, 0]
        region = region_near_annotations(annotations, settings.border_radius)
        pooled.update(mean, consensus)
        border.update(mean, consensus, region)
        soft.update(mean, annotations.float().mean(1))
        entropy = ensemble.entropy.cpu()[:, 0]
        uncertainty.update(entropy, (mean >= 0.5) != consensus)
        for b in range(stop - start):
            rows.append(_image_row(ids[start + b], probs[:, b, 0], mean[b], consensus[b], annotations[b], settings))
            if len(panels) < settings.panels:
                maps = decompose(probs[:, b, 0])
                panels.append(
                    {
                        "image": images[b].cpu().numpy(),
                        "annotations": annotations[b].numpy(),
                        "samples": (probs[:4, b, 0] >= 0.5).numpy(),
                        "mean": mean[b].numpy(),
                        "entropy": entropy[b].numpy(),
                        "disagreement": disagreement(annotations[b]).numpy(),
                        **{name: maps[name].float().numpy() for name in ("predictive", "aleatoric", "epistemic")},
                    }
                )
        if progress:
            progress(stop, count)
    frame = pl.DataFrame(rows)
    risks = 1.0 - frame["dice"].to_numpy()
    threshold = settings.uncertainty_threshold
    if threshold is None:  # choose it here: this is the validation split (see EvaluationSettings)
        threshold = choose_threshold(np.stack(frame["threshold_scores"].to_list()), risks)
        score = frame["threshold_scores"].list.get(THRESHOLDS.index(threshold))
        frame = frame.with_columns(score.alias("score_threshold_mean"))
    frame = frame.drop("threshold_scores")
    per_image = (
        "dice",
        "iou",
        "dice_per_sample",
        "dice_annotators",
        "iou_annotators",
        "ged",
        "hm_iou",
        "presence_error",
    )
    values = {
        **{k: float(frame[k].to_numpy().mean()) for k in per_image},
        # Empty-vs-empty counts as Dice 1: on LIDC about half the slices have an empty consensus,
        # so Dice over the others says whether the model finds nodules at all.
        "dice_nonempty": _mean_where(frame, "dice", pl.col("foreground") > 0),
        "ece": pooled.ece(),
        "ece_border": border.ece(),
        "brier": pooled.brier(),
        "brier_soft": soft.brier(),
        "brier_border": border.brier(),
        "nll": pooled.nll(),
        "uncertainty_error_r": uncertainty.correlation(),
        "ueo": uncertainty.overlap(),
        "aleatoric": float(frame["u_aleatoric"].to_numpy().mean()),
        "mutual_information": float(frame["u_epistemic"].to_numpy().mean()),
        "ncc": _mean_where(frame, "ncc", pl.col("ncc").is_not_nan()),
        "hd95": _mean_where(frame, "hd95", pl.col("hd95").is_not_nan()),
        "nsd": _mean_where(frame, "nsd", pl.col("nsd").is_not_nan()),
    }
    for name in AGGREGATIONS:
        values[f"aurc_{name}"], values[f"eaurc_{name}"] = failure_detection(frame[f"score_{name}"].to_numpy(), risks)
    summary = {
        "images": float(count),
        "boundary_images": float(frame["hd95"].is_not_nan().sum()),
        "samples": float(settings.samples),
        "ddim_steps": float(settings.steps),
        "uncertainty_threshold": float(threshold),
        **{name: values[name] for name in SUMMARY_METRICS},
    }
    return Evaluation(frame, summary, pl.DataFrame(pooled.reliability()), panels)


def _image_row(
    image_id: str,
    probs: torch.Tensor,
    mean: torch.Tensor,
    consensus: torch.Tensor,
    annotations: torch.Tensor,
    settings: EvaluationSettings,
) -> dict:
    """probs N×H×W, mean/consensus H×W, annotations A×H×W."""
    prediction = mean >= 0.5
    samples = probs >= 0.5
    calibration = CalibrationAccumulator(settings.bins)
    calibration.update(mean, consensus)
    maps = decompose(probs)
    threshold = 0.5 if settings.uncertainty_threshold is None else settings.uncertainty_threshold
    scores = aggregate(maps["predictive"], settings.patch, threshold)  # threshold_mean replaced when chosen
    ambiguity = disagreement(annotations)
    raters_marking = float(annotations.flatten(1).any(1).float().mean())
    samples_marking = float(samples.flatten(1).any(1).float().mean())
    return {
        "id": image_id,
        "dice": float(dice(prediction, consensus)),
        "iou": float(iou(prediction, consensus)),
        "dice_per_sample": float(dice(samples, consensus.expand_as(samples)).mean()),
        "dice_annotators": float(dice(prediction.expand_as(annotations), annotations).mean()),
        "iou_annotators": float(iou(prediction.expand_as(annotations), annotations).mean()),
        "ged": generalized_energy_distance(samples, annotations),
        "hm_iou": hungarian_matched_iou(samples, annotations),
        # Is a lesion's presence as uncertain as the raters are? On LIDC nearly every slice whose
        # majority is empty has one rater of four marking a lesion: 1 of 4 samples should mark it.
        "raters_marking": raters_marking,
        "samples_marking": samples_marking,
        "presence_error": abs(samples_marking - raters_marking),
        "ece": calibration.ece(),
        # Per bin, foreground pixels minus summed confidence: summed over any set of images they
        # give that set's pixel-pooled ECE, so `compare` can bootstrap the pooled ECE by patient.
        "ece_bin_gaps": (calibration.accuracy - calibration.confidence).tolist(),
        "pixels": calibration.pixels,
        "brier": calibration.brier(),
        "nll": calibration.nll(),
        "foreground": float(consensus.float().mean()),
        "predicted_foreground": float(prediction.float().mean()),
        # The image's presence score: its mask marks something exactly when this reaches 0.5.
        "confidence_max": float(mean.max()),
        "mean_entropy": float(binary_entropy(mean).mean()),
        **{f"u_{name}": float(value.mean()) for name, value in maps.items()},
        **{f"score_{name}": value for name, value in scores.items()},
        "threshold_scores": threshold_means(maps["predictive"]),
        # ValUES' ambiguity check: does the uncertainty sit where the raters disagree?
        "ncc": normalized_cross_correlation(maps["predictive"], ambiguity) if annotations.any() else float("nan"),
        **boundary_distances(prediction, consensus, settings.surface_tolerance),
    }


def _mean_where(frame: pl.DataFrame, column: str, condition: pl.Expr) -> float:
    selected = frame.filter(condition)[column]
    return float(selected.to_numpy().mean()) if selected.len() else float("nan")
