"""A study report for people: figures, best trials and paired significance tests, as Markdown and
one self-contained HTML file (figures embedded), in results/<study>/report/."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from platform.answer import answer  # noqa: E402
from platform.atomic import write_text  # noqa: E402
from platform.errors import UsageError  # noqa: E402
from platform.evaluation.figures import reliability_diagram, save_figure  # noqa: E402
from platform.evaluation.registry import CODEC_METRICS, HEADLINE  # noqa: E402
from platform.results import scan  # noqa: E402
from platform.spec import StudySpec  # noqa: E402
from platform.study_external import external_drops  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402


def write_report(spec: StudySpec, results_dir: Path, out: Path | None = None) -> Path:
    """Build the report of one study; raises UsageError when no trial has completed."""
    trials = scan(results_dir.parent, "trials", spec.name).collect()
    done = trials.filter(pl.col("status") == "completed") if trials.height else trials
    if done.is_empty():
        raise UsageError(f"{results_dir}: no completed trial to report on yet")
    out = out or results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    first = spec.objectives[0]
    ranked = done.sort(first.metric, descending=first.mode == "max", nulls_last=True)
    figures = [
        _objective_vs_parameters(done, spec, out / "objective_vs_parameters.png"),
        _pareto_front(done, out / "pareto_dice_ece.png"),
    ]
    for row in ranked.head(2).iter_rows(named=True):
        run_dir = results_dir / "runs" / row["trial_id"]
        if (run_dir / "reliability.parquet").is_file():
            figures.append(
                reliability_diagram(
                    pl.read_parquet(run_dir / "reliability.parquet"),
                    out / f"reliability_{row['trial_id']}.png",
                    f"trial {row['trial_id']}",
                )
            )
        for name in ("panels.png", "uncertainty.png", "risk_coverage.png"):
            if (run_dir / name).is_file():
                figures.append(run_dir / name)
    images = scan(results_dir.parent, "images", spec.name).collect()
    sentence, configs, comparison = answer(spec, done, images)
    params = [c for c in done.columns if c.startswith("p_")]
    wanted = ["trial_id", *params, *HEADLINE, "ece_border", "brier", "hm_iou", *CODEC_METRICS, "reused_stages"]
    wanted.append("wall_s")
    best = ranked.select([c for c in wanted if c in ranked.columns]).head(10)
    failed = trials.filter(pl.col("status") != "completed").select("trial_id", "status", "failure")
    shown = [c for c in configs.columns if c not in ("config", "trials")]
    sections = [
        ("Question and answer", sentence),
        (
            "Study",
            f"`{spec.name}` on `{spec.dataset}` at {spec.image_size} px · {trials.height} trials "
            f"({done.height} completed) · objectives: "
            + ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives)
            + f" · evaluation: {spec.evaluation.samples} samples, {spec.evaluation.steps} DDIM steps, "
            f"{spec.evaluation.images} {spec.evaluation.split} images. ECE is positive-class binned ECE "
            f"(10 bins) of the confidence map against the annotators' majority vote.",
        ),
        (f"Configurations (mean over seeds, 95 % t-interval; {spec.repeats} seed(s) each)", configs.select(shown)),
        ("Best configuration vs its comparison, paired by image, patients resampled", comparison),
        ("Best trials", best),
        ("Trials that did not complete", failed),
    ]
    external = scan(results_dir.parent, "external", spec.name).collect()
    if external.height:
        drops = external_drops(results_dir, external, images)
        sections.insert(
            -1,
            (
                f"External validation: internal ({spec.evaluation.split}) vs external folders, change = "
                "external − internal, 95 % bootstrap CI resampling patients on each side, Mann-Whitney p",
                drops,
            ),
        )
    _write_markdown(out / "report.md", sections, figures, out)
    _write_html(out / "report.html", spec.name, sections, figures)
    return out


def _objective_vs_parameters(done: pl.DataFrame, spec: StudySpec, path: Path) -> Path:
    params = [c for c in done.columns if c.startswith("p_")] or ["trial_id"]
    metric = spec.objectives[0].metric
    figure, axes = plt.subplots(1, len(params), figsize=(3.6 * len(params), 3.2), squeeze=False)
    for axis, param in zip(axes[0], params, strict=True):
        values = done[param].to_list()
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None):
            axis.scatter([np.nan if v is None else v for v in values], done[metric], color="steelblue")
            if param.endswith("wce_weight"):
                axis.set_xscale("log")
        else:
            labels = sorted({str(v) for v in values})
            axis.scatter([labels.index(str(v)) for v in values], done[metric], color="steelblue")
            axis.set_xticks(range(len(labels)), labels)
        axis.set_xlabel(param.removeprefix("p_"))
        axis.set_ylabel(metric)
    figure.tight_layout()
    return save_figure(figure, path)


def _pareto_front(done: pl.DataFrame, path: Path) -> Path:
    dice, ece = done["dice"].to_numpy(), done["ece"].to_numpy()
    front = [
        i
        for i in range(len(dice))
        if not any(
            dice[j] >= dice[i] and ece[j] <= ece[i] and (dice[j] > dice[i] or ece[j] < ece[i]) for j in range(len(dice))
        )
    ]
    figure, axis = plt.subplots(figsize=(4.5, 3.6))
    axis.scatter(ece, dice, color="lightgrey", edgecolor="k", label="trials")
    order = sorted(front, key=lambda i: ece[i])
    axis.plot(ece[order], dice[order], "o-", color="crimson", label="Pareto front")
    axis.set_xlabel("ECE (lower is better)")
    axis.set_ylabel("Dice (higher is better)")
    axis.legend()
    return save_figure(figure, path)


def _markdown_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_none_"
    cells = [[_cell(v) for v in row] for row in frame.iter_rows()]
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    return head + "\n" + "\n".join("| " + " | ".join(r) + " |" for r in cells)


def _cell(value: object) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _write_markdown(path: Path, sections: list, figures: list[Path], out: Path) -> None:
    parts = ["# Study report"]
    for title, body in sections:
        parts.append(f"## {title}\n\n" + (body if isinstance(body, str) else _markdown_table(body)))
    parts.append("## Figures\n\n" + "\n\n".join(f"![{f.stem}]({os.path.relpath(f, out)})" for f in figures))
    write_text(path, "\n\n".join(parts) + "\n")


def _write_html(path: Path, name: str, sections: list, figures: list[Path]) -> None:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Study {html.escape(name)}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>Study report: {html.escape(name)}</h1>",
    ]
    for title, body in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(body, str):
            parts.append(f"<p>{html.escape(body)}</p>")
        elif body.is_empty():
            parts.append("<p><em>none</em></p>")
        else:
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r) + "</tr>" for r in body.iter_rows()
            )
            head = "".join(f"<th>{html.escape(c)}</th>" for c in body.columns)
            parts.append(f"<table><tr>{head}</tr>{rows}</table>")
    parts.append("<h2>Figures</h2>")
    for figure in figures:
        data = base64.b64encode(figure.read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{html.escape(figure.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(figure.stem)}</figcaption></figure>"
        )
    write_text(path, "".join(parts) + "</body></html>\n")
