"""Run and inspect hyperparameter studies of latent-diffusion segmentation models.

  python -m platform.study run studies/wce_sweep.yaml [--address ADDR] [--max-trials N] [--name NAME]
  python -m platform.study resume NAME            continue an interrupted study (finished trials are kept)
  python -m platform.study status [NAME]          trials done / running / failed and the best so far
  python -m platform.study list                   every study under results/
  python -m platform.study query "SQL" [--study NAME] [--format table|csv|parquet] [--output FILE]
  python -m platform.study report NAME            figures, significance tests, report.md and report.html
  python -m platform.study evaluate NAME --external FOLDER --layout LAYOUT [--top K]
                                                  the K best trials on a folder none saw (table `external`)

A study is a YAML spec (see studies/): dataset, search space, objectives, budget, evaluation and
resources. `run` starts a local Ray instance sized to this machine (dashboard on 127.0.0.1:8265,
token authentication on) or joins a cluster given by --address or RAY_ADDRESS. Each trial trains on
Ray Train workers, evaluates its sample ensembles and writes its own rows under results/<study>/
(tables `trials`, `images`, `curves`; `evaluate` adds `external`; `query` reads them with SQL).
Bad specs exit with status 2."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from platform.cli import run_command
from platform.cluster import stop_ray, use_token_auth
from platform.errors import UsageError
from platform.evaluation.registry import HEADLINE, format_cell
from platform.results import TABLES, query, scan
from platform.spec import METRICS, StudySpec, load_spec, read_spec

import polars as pl
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


def results_root() -> Path:
    return Path(os.environ.get("STUDY_RESULTS", "results")).resolve()


def prepared_root() -> Path:
    return Path(os.environ.get("STUDY_PREPARED") or REPO / "prepared").resolve()


def _context(spec: StudySpec, results_dir: Path):
    """What every trial shares; checks first that the prepared data matches the spec."""
    from platform.config import load_config
    from platform.data.loader import PreparedSplit
    from platform.provenance import provenance
    from platform.trial import TrialContext

    prepared = prepared_root()
    data = load_config(spec.overrides({})).data
    PreparedSplit.open(prepared / spec.dataset, "train").check_matches(
        data.image_size, data.channels, prepared / spec.dataset
    )
    origin = provenance()
    return TrialContext(spec, str(results_dir), str(prepared), origin.git_commit, origin.data_version)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    if args.max_trials is not None and args.max_trials < 1:
        raise UsageError("--max-trials must be ≥ 1")
    spec, spec_text = read_spec(Path(args.spec), args.name)
    results_dir = results_root() / spec.name
    if (results_dir / "tune").exists():
        raise UsageError(
            f"{results_dir}: study '{spec.name}' exists; `resume {spec.name}` continues it, "
            f"or pass --name for a new one"
        )
    context = _context(spec, results_dir)
    trials = min(spec.trials, args.max_trials or spec.trials)
    from platform.cluster import cluster_capacity, start_ray
    from platform.search import feasible_concurrency, make_tuner

    url = start_ray(args.address)
    concurrency = feasible_concurrency(spec, *cluster_capacity())
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "spec.yaml").write_text(spec_text)
    _announce(console, spec, url, trials, concurrency, results_dir)
    from platform.live import LiveTrialTable

    tuner = make_tuner(spec, context, concurrency, trials, [LiveTrialTable(f"study {spec.name}")])
    _timed(tuner.fit, results_dir, "run")
    return _finish(console, spec, results_dir)


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    results_dir = results_root() / args.name
    spec = load_spec(results_dir / "spec.yaml")
    context = _context(spec, results_dir)
    from platform.cluster import cluster_capacity, start_ray
    from platform.search import feasible_concurrency, restore_tuner

    url = start_ray(args.address)
    feasible_concurrency(spec, *cluster_capacity())
    done = (
        _trials(results_dir).filter(pl.col("status") == "completed").height if (results_dir / "trials").exists() else 0
    )
    console.print(f"resuming [bold]{spec.name}[/]: {done} trials already completed · dashboard {url}")
    _timed(restore_tuner(context, []).fit, results_dir, "resume")
    return _finish(console, spec, results_dir)


def _timed(fit, results_dir: Path, command: str) -> None:
    """Run the Tuner and append the driver's wall time to results/<study>/driver.parquet."""
    from datetime import UTC, datetime
    from platform.results import write_table

    started, tic = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
    fit()
    row = pl.DataFrame({"command": [command], "started_at": [started], "wall_s": [time.perf_counter() - tic]})
    path = results_dir / "driver.parquet"
    previous = pl.read_parquet(path) if path.is_file() else row.clear()
    write_table(pl.concat([previous, row]), path)


def _announce(console: Console, spec: StudySpec, url: str, trials: int, concurrency: int, results_dir: Path) -> None:
    r = spec.resources
    console.print(
        f"study [bold]{spec.name}[/] · {trials} trials · {concurrency} at a time · each "
        f"{r.workers} worker(s) × {r.cpus_per_worker:g} CPU + {r.trial_cpus:g} · objectives "
        + ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives)
    )
    console.print(f"Ray dashboard: {url or 'not available'}  (token: `ray get-auth-token`)")
    console.print(f"results: {results_dir}")


def _trials(results_dir: Path) -> pl.DataFrame:
    return scan(results_dir.parent, "trials", results_dir.name).collect()


def _finish(console: Console, spec: StudySpec, results_dir: Path) -> int:
    trials = _trials(results_dir)
    render_best(console, spec, trials)
    console.print(f"results: {results_dir}  ·  `python -m platform.study report {spec.name}`")
    failed = trials.filter(pl.col("status") != "completed").height if trials.height else 0
    return 0 if trials.height and failed < trials.height else 1


def render_best(console: Console, spec: StudySpec, trials: pl.DataFrame, top: int = 5) -> None:
    if trials.is_empty():
        console.print("no trial finished")
        return
    done = trials.filter(pl.col("status") == "completed")
    first = spec.objectives[0]
    best = done.sort(first.metric, descending=first.mode == "max", nulls_last=True).head(top)
    params = [c for c in trials.columns if c.startswith("p_")]
    table = Table(
        title=f"best trials by {first.metric} ({first.mode}) · {done.height} completed, "
        f"{trials.height - done.height} not"
    )
    for column in ("trial", *[p[2:] for p in params], *HEADLINE, "wall s"):
        table.add_column(column, justify="right")
    for row in best.iter_rows(named=True):
        cells = [format_cell(row.get(k), k) for k in (*params, *HEADLINE)]
        table.add_row(row["trial_id"], *cells, format_cell(row.get("wall_s")))
    console.print(table)


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    root = results_root()
    names = [args.name] if args.name else sorted(p.parent.name for p in root.glob("*/spec.yaml"))
    if not names:
        raise UsageError(f"{root}: no study yet (python -m platform.study run studies/smoke.yaml)")
    for name in names:
        if not (root / name / "spec.yaml").is_file():
            raise UsageError(f"{root / name}: no such study")
        spec = load_spec(root / name / "spec.yaml")
        trials = _trials(root / name)
        counts = dict(trials.group_by("status").len().iter_rows()) if trials.height else {}
        console.print(
            f"[bold]{name}[/]: {spec.trials} planned · "
            + " · ".join(f"{counts.get(s, 0)} {s}" for s in ("completed", "running", "failed"))
        )
        if args.name:
            render_best(console, spec, trials)
    return 0


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    args.name = None
    return cmd_status(args, console)


def cmd_query(args: argparse.Namespace, console: Console) -> int:
    frame = query(results_root(), args.sql, args.study)
    if args.format == "parquet":
        if not args.output:
            raise UsageError("--format parquet needs --output FILE")
        from platform.results import write_table

        write_table(frame, Path(args.output))
        console.print(f"{frame.height} rows → {args.output}")
    elif args.format == "csv":
        # CSV has no nested values: a list cell (an image's `ece_bin_gaps`) becomes "v1 v2 ..."
        nested = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
        flat = [pl.col(name).list.eval(pl.element().cast(pl.String)).list.join(" ") for name in nested]
        text = frame.with_columns(flat).write_csv()
        Path(args.output).write_text(text) if args.output else sys.stdout.write(text)
    else:
        with pl.Config(tbl_rows=100, tbl_cols=30, tbl_width_chars=160, float_precision=4):
            print(frame)
    return 0


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from platform.report import write_report

    results_dir = results_root() / args.name
    if not (results_dir / "spec.yaml").is_file():
        raise UsageError(f"{results_dir}: no such study")
    out = write_report(load_spec(results_dir / "spec.yaml"), results_dir, Path(args.out) if args.out else None)
    console.print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0


def cmd_evaluate(args: argparse.Namespace, console: Console) -> int:
    from platform.study_external import plan, run_jobs

    results_dir = results_root() / args.name
    if not (results_dir / "spec.yaml").is_file():
        raise UsageError(f"{results_dir}: no such study")
    spec = load_spec(results_dir / "spec.yaml")
    options = {"samples": str(args.samples), "steps": str(args.steps), "seed": str(spec.seed)}
    if args.images is not None:
        options["images"] = str(args.images)
    for key in ("samples", "steps", "images"):
        if key in options and int(options[key]) < 1:
            raise UsageError(f"--{key} {options[key]}: must be ≥ 1")
    folder = Path(args.external)
    internal = _trials(results_dir)
    jobs = plan(spec, results_dir, prepared_root(), internal, folder, args.layout, args.top, options)
    from platform.cluster import cluster_capacity, start_ray

    url = start_ray(args.address)
    _, largest = cluster_capacity()
    cpus = min(spec.resources.workers * spec.resources.cpus_per_worker, largest)
    console.print(
        f"evaluating {len(jobs)} best trial(s) of [bold]{spec.name}[/] on {folder} ({args.layout}), "
        f"{args.samples} samples × {args.steps} DDIM steps · {cpus:g} CPU each · dashboard {url}"
    )
    rows = pl.DataFrame(run_jobs(jobs, cpus))
    table = Table(title=f"{spec.name} on {folder.name}: internal ({spec.evaluation.split}) → external")
    for column in ("trial", "images", *HEADLINE):
        table.add_column(column, justify="right")
    for row in rows.iter_rows(named=True):
        before = internal.filter(pl.col("trial_id") == row["trial_id"]).row(0, named=True)
        cells = [f"{format_cell(before[k], k)} → {format_cell(row[k], k)}" for k in HEADLINE]
        table.add_row(row["trial_id"], str(row["images"]), *cells)
    console.print(table)
    console.print(f"table `external`: {results_dir / 'external'}  ·  `python -m platform.study report {spec.name}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m platform.study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a study from a spec YAML")
    run.add_argument("spec")
    run.add_argument("--address", help="join this Ray cluster (default: RAY_ADDRESS, else a local instance)")
    run.add_argument("--max-trials", type=int, help="run at most N trials of the spec")
    run.add_argument("--name", help="study name (default: the spec's name)")
    resume = sub.add_parser("resume", help="continue an interrupted study")
    resume.add_argument("name")
    resume.add_argument("--address")
    status = sub.add_parser("status", help="trial counts and best trials")
    status.add_argument("name", nargs="?")
    sub.add_parser("list", help="every study")
    q = sub.add_parser("query", help=f"SQL over the tables {', '.join(TABLES)}; objectives: {', '.join(METRICS)}")
    q.add_argument("sql")
    q.add_argument("--study")
    q.add_argument("--format", choices=("table", "csv", "parquet"), default="table")
    q.add_argument("--output")
    report = sub.add_parser("report", help="figures, tests and an HTML report of a study")
    report.add_argument("name")
    report.add_argument("--out", help="output folder (default: results/<study>/report)")
    evaluate = sub.add_parser("evaluate", help="evaluate the best trials on an external folder (table `external`)")
    evaluate.add_argument("name")
    evaluate.add_argument("--external", required=True, help="a folder in a supported layout")
    evaluate.add_argument("--layout", required=True, help="its layout (lidc_crops, folder_pairs, isic2018, ...)")
    evaluate.add_argument("--top", type=int, default=3, help="the K best trials by the first objective (default 3)")
    evaluate.add_argument("--samples", type=int, default=16)
    evaluate.add_argument("--steps", type=int, default=20, help="DDIM steps per sample")
    evaluate.add_argument("--images", type=int, help="at most N images of the folder (default: all)")
    evaluate.add_argument("--address")
    return parser


COMMANDS = {
    "run": cmd_run,
    "resume": cmd_resume,
    "status": cmd_status,
    "list": cmd_list,
    "query": cmd_query,
    "report": cmd_report,
    "evaluate": cmd_evaluate,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_token_auth()  # before anything imports Ray: it reads RAY_AUTH_MODE once
    try:
        return run_command(lambda console: COMMANDS[args.command](args, console))
    finally:
        stop_ray()


if __name__ == "__main__":
    sys.exit(main())
