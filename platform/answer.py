"""The answer a study gives, computed from its rows: configurations over seeds, the best against
the spec's reference configuration, compared by patient, stated in one or two sentences.

Pure functions of Polars frames (no files, no Ray), so a synthetic study with a known difference
tests them directly."""

from __future__ import annotations

import math
from platform.evaluation.registry import BY_NAME
from platform.evaluation.statistics import paired_comparison, with_dice_nonempty
from platform.spec import StudySpec, parameter_column
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import t as student_t


def configurations(done: pl.DataFrame, spec: StudySpec) -> pl.DataFrame:
    """One row per configuration (the searched parameters): its trials, seeds, and for each
    objective the mean over seeds with a 95 % t-interval (null with one seed). Best first."""
    params = _params(done, spec)
    metrics = list(dict.fromkeys(o.metric for o in spec.objectives))
    keyed = done.with_columns(_config_key(params).alias("config"))
    rows = []
    for (config,), group in keyed.group_by(["config"], maintain_order=True):
        row: dict[str, Any] = {"config": config, "trials": group["trial_id"].to_list(), "seeds": group.height}
        row |= {p: group[p][0] for p in params}
        for metric in metrics:
            mean, low, high = _t_interval(group[metric].to_numpy().astype(float))
            row |= {metric: mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high}
        rows.append(row)
    first = spec.objectives[0]
    return pl.DataFrame(rows).sort(first.metric, descending=first.mode == "max", nulls_last=True)


def reference_config(configs: pl.DataFrame, spec: StudySpec) -> dict[str, Any] | None:
    """The configuration row matching the spec's `reference` (None when no trial ran it)."""
    if not spec.reference:
        return None
    for row in configs.iter_rows(named=True):
        if all(_same(row.get(parameter_column(k)), v) for k, v in spec.reference.items()):
            return row
    return None


def answer(spec: StudySpec, done: pl.DataFrame, images: pl.DataFrame) -> tuple[str, pl.DataFrame, pl.DataFrame]:
    """(the answer in words, the configurations table, the paired comparison best − reference).

    images: the per-image rows of every completed trial (columns trial_id, id, group, metrics)."""
    configs = configurations(done, spec)
    best = configs.row(0, named=True)
    reference = reference_config(configs, spec)
    question = (spec.question.strip() + " ") if spec.question else ""
    first = spec.objectives[0].metric
    if reference is None:
        if configs.height < 2:
            return f"{question}Only one configuration completed: nothing to compare.", configs, pl.DataFrame()
        reference, against = configs.row(1, named=True), "the runner-up"
    else:
        against = "the reference"
    if reference["config"] == best["config"]:
        if configs.height < 2:
            return f"{question}Only the reference configuration completed.", configs, pl.DataFrame()
        reference, best, against = configs.row(1, named=True), reference, "the best other configuration"
        winner = f"The reference {_describe(best, spec)}"
    else:
        winner = f"The configuration {_describe(best, spec)}"
    lead = f"{winner} is best on {first}; against {against} {_describe(reference, spec)}"
    a, b = _per_image(images, reference["trials"]), _per_image(images, best["trials"])
    wanted = [first, *(spec.compare or [o.metric for o in spec.objectives[1:]])]
    metrics = tuple(m for m in dict.fromkeys(wanted) if m in a.columns)  # those measured per image
    table = paired_comparison(a, b, metrics=metrics, cluster="group")
    parts = [_difference_words(row) for row in table.iter_rows(named=True)]
    sentence = f"{question}{lead}: " + "; ".join(parts) + "."
    verdict = table.row(0, named=True)
    if _covers_zero(verdict):
        sentence += f" The data do not decide on {first}: its 95 % CI covers 0."
    return sentence, configs, table


def _per_image(images: pl.DataFrame, trials: list[str]) -> pl.DataFrame:
    """Per-image metrics of one configuration, averaged over its seeds (its trials)."""
    rows = images.filter(pl.col("trial_id").is_in(trials))
    rows = with_dice_nonempty(rows)
    numeric = [c for c in rows.columns if c in BY_NAME or c == "dice_nonempty"]
    return rows.group_by("id", "group").agg(pl.col(c).mean() for c in dict.fromkeys(numeric))


def _difference_words(row: dict[str, Any]) -> str:
    digits = BY_NAME[row["metric"]].digits if row["metric"] in BY_NAME else 4
    direction = BY_NAME[row["metric"]].direction if row["metric"] in BY_NAME else "max"
    d, low, high = row["difference"], row["ci_low"], row["ci_high"]
    if _covers_zero(row):
        size = f"differs by {d:+.{digits}f}"
    else:
        better = (d > 0) == (direction == "max")
        size = f"{'better' if better else 'worse'} by {abs(d):.{digits}f}"
    p = row["wilcoxon_p"]
    p_text = "n/a" if p is None or math.isnan(p) else f"{p:.2g}"
    return (
        f"{row['metric']} {size} [{low:+.{digits}f}, {high:+.{digits}f}] "
        f"(Wilcoxon p = {p_text}, {row['clusters']} patients)"
    )


def _covers_zero(row: dict[str, Any]) -> bool:
    return not (row["ci_low"] > 0 or row["ci_high"] < 0)


def _describe(row: dict[str, Any], spec: StudySpec) -> str:
    cells = [f"{p.removeprefix('p_')} = {_short(row[p])}" for p in row if p.startswith("p_") and row[p] is not None]
    seeds = f", {row['seeds']} seeds" if row["seeds"] > 1 else ""
    return "(" + ", ".join(cells) + seeds + ")" if cells else "(the base configuration)"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _params(done: pl.DataFrame, spec: StudySpec) -> list[str]:
    return [c for c in spec.parameter_columns() if c in done.columns]


def _config_key(params: list[str]) -> pl.Expr:
    if not params:
        return pl.lit("base")
    return pl.concat_str([pl.col(p).cast(pl.Utf8).fill_null("-") for p in params], separator="|")


def _t_interval(values: np.ndarray) -> tuple[float, float | None, float | None]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), None, None
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None, None
    half = float(student_t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool) and isinstance(value, (int, float)):
        return math.isclose(float(value), float(wanted), rel_tol=1e-6)
    return str(value).lower() == str(wanted).lower()
