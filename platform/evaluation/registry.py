"""The one list of evaluation metrics: name, direction, display format and meaning.

The study spec's allowed objectives, the `trials` table schema, the metric keys a trial reports,
the evaluate command's summary, the live table, the study tables and the report all read this.
Adding a metric is one entry here plus its computation in `ensembles.evaluate_ensembles`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "max" or "min": which way is better (an objective's default mode)
    meaning: str  # one line for --help, the README and the report
    digits: int = 4  # decimals shown in tables
    summary: bool = True  # a dataset-level value in evaluation summaries and trial rows
    objective: bool = True  # may be a study objective


METRICS: tuple[Metric, ...] = (
    Metric("dice_nonempty", "max", "Dice vs the majority vote on images whose majority is not empty"),
    Metric("dice", "max", "Dice of the ensemble-mean mask (≥ 0.5) vs the majority vote; empty vs empty counts 1"),
    Metric("iou", "max", "IoU of the ensemble-mean mask vs the majority vote; empty vs empty counts 1"),
    Metric("dice_per_sample", "max", "mean Dice of each sampled mask vs the majority vote"),
    Metric("dice_annotators", "max", "mean Dice of the ensemble-mean mask vs each annotator"),
    Metric("iou_annotators", "max", "mean IoU of the ensemble-mean mask vs each annotator"),
    Metric("ged", "min", "generalised energy distance, d = 1 − IoU, between the N samples and the annotators"),
    Metric("hm_iou", "max", "Hungarian-matched IoU between the samples and the annotators"),
    Metric(
        "presence_error",
        "min",
        "mean per image of |share of samples marking anything − share of annotators marking anything|",
    ),
    Metric("ece", "min", "positive-class binned ECE (10 bins) of the confidence map vs the majority vote", 5),
    Metric("ece_border", "min", "ECE on pixels within `radius` px of any annotation", 5),
    Metric("brier", "min", "Brier score of the confidence map vs the majority vote", 5),
    Metric("brier_soft", "min", "Brier score vs the annotator frequency map (the mean of the annotators' masks)", 5),
    Metric("brier_border", "min", "Brier score on pixels within `radius` px of any annotation", 5),
    Metric("nll", "min", "binary cross-entropy of the confidence map vs the majority vote"),
    Metric("ueo", "max", "best uncertainty–error overlap (Dice of thresholded entropy vs error) over thresholds"),
    Metric("uncertainty_error_r", "max", "Pearson correlation of pixel entropy and pixel error"),
    Metric("aleatoric", "min", "mean expected entropy of the samples (bits per pixel): data uncertainty"),
    Metric("mutual_information", "min", "mean predictive − expected entropy (bits per pixel): model uncertainty"),
    *(
        Metric(f"{kind}_{agg}", "min", f"{what} (risk 1 − Dice, images ranked by the {agg} of the entropy map)")
        for agg in ("mean", "sum", "patch_max", "threshold_mean")
        for kind, what in (("aurc", "area under the risk–coverage curve"), ("eaurc", "AURC minus the optimal AURC"))
    ),
    Metric("ncc", "max", "normalised cross-correlation of the entropy map and the annotators' disagreement map"),
    Metric("hd95", "min", "95th-percentile Hausdorff distance (px), mean mask vs consensus, both non-empty", 2),
    Metric("nsd", "max", "normalised surface Dice at 2 px of the mean mask vs the consensus, both non-empty"),
    Metric(
        "ae_dice_small",
        "max",
        "mask autoencoder reconstruction Dice on non-empty slices below the median lesion area",
        summary=False,
        objective=False,
    ),
    Metric(
        "ae_dice_large",
        "max",
        "mask autoencoder reconstruction Dice on non-empty slices at or above the median lesion area",
        summary=False,
        objective=False,
    ),
)
BY_NAME = {m.name: m for m in METRICS}
# The compact set shown in the live table and the best-trials tables; dice_nonempty first, since
# overall Dice rewards predicting nothing on LIDC's many empty slices.
HEADLINE = ("dice_nonempty", "dice", "iou", "ece", "brier_soft", "ged")
SUMMARY_METRICS = tuple(m.name for m in METRICS if m.summary)
CODEC_METRICS = ("ae_dice_small", "ae_dice_large")  # trial columns of models with a mask autoencoder
OBJECTIVES = {m.name: m.direction for m in METRICS if m.objective}


def metric(name: str) -> Metric:
    """The registry entry of `name`; KeyError names the known metrics."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a metric; known: {', '.join(BY_NAME)}") from None


def format_cell(value: object, name: str = "") -> str:
    """One table cell: '–' for missing, a metric's digits for its floats, 4 significant digits otherwise."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{BY_NAME[name].digits}f}" if name in BY_NAME else f"{value:.4g}"
    return str(value)
