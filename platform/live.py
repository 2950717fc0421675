"""The driver's live view: a rich table of trials (state, parameters, latest metrics)."""

from __future__ import annotations

import sys
from platform.evaluation.registry import HEADLINE, format_cell
from typing import Any

from ray.tune import Callback
from rich.console import Console
from rich.live import Live
from rich.table import Table

SHOWN = ("stage", "step", "loss", *HEADLINE, "reused")


class LiveTrialTable(Callback):
    """A Tune callback that redraws one table row per trial on every event.

    Picklable (Tune saves its callbacks with the experiment): the Live display is rebuilt in
    `setup`, which Tune calls again when a study is resumed."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: dict[str, dict[str, Any]] = {}
        self._live: Live | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"title": self.title, "rows": self.rows, "_live": None}

    def setup(self, stop: Any = None, num_samples: Any = None, total_num_samples: Any = None, **info: Any) -> None:
        console = Console(width=None if sys.stdout.isatty() else 140)
        self._live = Live(self.render(), console=console, refresh_per_second=2, transient=False)
        self._live.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, "RUNNING", {})

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._update(trial, "RUNNING", result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # A trial's own final report says completed; one a scheduler stopped ends on a training report.
        last = trial.last_result or {}
        self._update(trial, "TERMINATED" if last.get("status") == "completed" else "PRUNED", last)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trial, "ERROR", trial.last_result or {})

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.stop()

    def _update(self, trial: Any, state: str, result: dict) -> None:
        row = self.rows.setdefault(trial.trial_id, {"params": dict(trial.config)})
        row["state"] = state
        row.update({k: result[k] for k in SHOWN if k in result})
        if self._live is not None:
            self._live.update(self.render())

    def render(self) -> Table:
        table = Table(title=self.title)
        params = sorted({k for row in self.rows.values() for k in row["params"]})
        for column in ("trial", "state", *params, *SHOWN):
            table.add_column(column.removeprefix("model.").removeprefix("train."), justify="right")
        for trial_id, row in self.rows.items():
            cells = [trial_id, row.get("state", "")]
            cells += [format_cell(row["params"].get(p)) for p in params]
            cells += [format_cell(row.get(k), k) for k in SHOWN]
            table.add_row(*cells)
        return table
