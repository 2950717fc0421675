"""Study specs: a study YAML validated into typed dataclasses before anything starts.

Every problem is a SpecError (exit status 2) whose message names the file, the key and the
allowed values. A spec holds data only: it cannot name Python objects to instantiate."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from platform.config import load_config
from platform.errors import ConfigError, UsageError
from platform.evaluation.registry import OBJECTIVES
from platform.spec_sections import PRUNING_METRICS, Evaluation, Objective, Parameter, Pruning, Resources
from typing import Any

import yaml

METRICS = OBJECTIVES  # objective metric → its natural direction, from the one registry
PARAM_TYPES = ("float", "log_float", "int", "categorical")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SpecError(UsageError):
    """A study spec is invalid; the message names the file and key."""


@dataclass(frozen=True)
class StudySpec:
    name: str
    dataset: str
    image_size: int
    trials: int
    objectives: tuple[Objective, ...]
    search: tuple[Parameter, ...]
    base: tuple[str, ...] = ()
    budget: dict[str, int] = field(default_factory=dict)
    pruning: Pruning = Pruning()
    evaluation: Evaluation = Evaluation()
    resources: Resources = Resources()
    seed: int = 0
    reuse_stages: bool = True  # load finished stages other trials trained on the same inputs
    repeats: int = 1  # runs per configuration, seeds seed … seed + repeats − 1; objectives are their mean
    question: str = ""  # what the study asks; the report opens with it and its answer
    reference: dict[str, Any] = field(default_factory=dict)  # the configuration the best is compared with
    compare: tuple[str, ...] = ()  # metrics of that comparison (default: the objectives)
    source: str = ""

    def parameter_columns(self) -> dict[str, Any]:
        """`p_<name>` column → Polars dtype of each searched parameter (for the `trials` table)."""
        import polars as pl

        def dtype(q: Parameter) -> Any:
            if q.type == "int":
                return pl.Int64
            if q.type != "categorical":
                return pl.Float64
            kinds = {type(c) for c in q.choices}
            return {
                frozenset({bool}): pl.Boolean,
                frozenset({int}): pl.Int64,
                frozenset({float}): pl.Float64,
                frozenset({int, float}): pl.Float64,
            }.get(frozenset(kinds), pl.Utf8)

        return {parameter_column(q.key): dtype(q) for q in self.search}

    @property
    def cpus_per_trial(self) -> float:
        return self.resources.trial_cpus + self.resources.workers * self.resources.cpus_per_worker

    def overrides(self, params: dict[str, Any], repeat: int = 0) -> list[str]:
        """Hydra overrides of one trial's run (repeat r uses seed + r): dataset, image size, base,
        budget, then searched values."""
        budget = [f"train.{k}={v}" for k, v in self.budget.items()]
        searched = [f"{k}={_hydra_value(v)}" for k, v in params.items()]
        return [
            f"data={self.dataset}",
            f"data.image_size={self.image_size}",
            *self.base,
            *budget,
            *self.pruning.overrides(),
            f"train.seed={self.seed + repeat}",
            *searched,
        ]


def parameter_column(key: str) -> str:
    """`model.wce_weight` → `p_wce_weight` (the trials-table column of a searched key)."""
    return "p_" + key.split(".", 1)[1]


def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def load_spec(path: Path) -> StudySpec:
    """Read and validate a study YAML. Raises SpecError naming the file and the key."""
    return read_spec(path)[0]


def read_spec(path: Path, name: str | None = None) -> tuple[StudySpec, str]:
    """Read a study YAML once: (the validated spec, the text to keep beside its results).

    `name` replaces the spec's name (the text kept then says so). Raises SpecError naming the
    file and the key."""
    if not path.is_file():
        raise SpecError(f"{path}: study spec not found")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if name is not None and isinstance(raw, dict):
        raw, text = {**raw, "name": name}, yaml.safe_dump({**raw, "name": name}, sort_keys=False)
    try:
        return parse_spec(raw, str(path)), text
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def parse_spec(raw: Any, source: str = "<spec>") -> StudySpec:
    """Validate a parsed YAML mapping into a StudySpec (see `studies/*.yaml` for the fields)."""
    top = _mapping(raw, "spec")
    _known(
        top,
        "",
        {
            "name",
            "dataset",
            "image_size",
            "trials",
            "objectives",
            "search",
            "base",
            "budget",
            "pruning",
            "evaluation",
            "resources",
            "seed",
            "reuse_stages",
            "repeats",
            "question",
            "reference",
            "compare",
        },
    )
    name = _get(top, "name", str)
    if not NAME.match(name) or ".." in name:
        raise SpecError(f"name: {name!r} must be 1-64 letters, digits, '.', '_' or '-' (no path separators)")
    spec = StudySpec(
        name=name,
        dataset=_get(top, "dataset", str),
        image_size=_positive(_get(top, "image_size", int), "image_size"),
        trials=_positive(_get(top, "trials", int), "trials"),
        objectives=_objectives(top.get("objectives")),
        search=tuple(_parameter(k, v) for k, v in _mapping(top.get("search", {}), "search").items()),
        base=tuple(_list_of_str(top.get("base", []), "base")),
        budget=_budget(top.get("budget", {})),
        pruning=_section(top.get("pruning", {}), Pruning, "pruning"),
        evaluation=_section(top.get("evaluation", {}), Evaluation, "evaluation"),
        resources=_section(top.get("resources", {}), Resources, "resources"),
        seed=_get(top, "seed", int, 0),
        reuse_stages=_get(top, "reuse_stages", bool, True),
        repeats=_positive(_get(top, "repeats", int, 1), "repeats"),
        question=_get(top, "question", str, ""),
        reference=_reference(top.get("reference", {})),
        compare=_compare(top.get("compare", [])),
        source=source,
    )
    _check_sections(spec)
    _check_against_config(spec)
    return spec


def _compare(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError("compare: expected a list of metric names such as [dice_nonempty, ece]")
    for name in value:
        if name not in METRICS:
            raise SpecError(f"compare: {name!r} is not one of {', '.join(sorted(METRICS))}")
    return tuple(value)


def _reference(value: Any) -> dict[str, Any]:
    """`reference: {model.wce_weight: 50}`: config keys → plain values (numbers, strings, booleans)."""
    reference = _mapping(value, "reference")
    for key, item in reference.items():
        if not isinstance(key, str) or "." not in key:
            raise SpecError(f"reference.{key}: expected a config key such as model.wce_weight")
        if not isinstance(item, (int, float, str, bool)):
            raise SpecError(f"reference.{key}: expected a number, string or boolean, got {item!r}")
    return dict(reference)


def _mapping(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _known(values: dict, prefix: str, allowed: set[str]) -> None:
    for key in values:
        if key not in allowed:
            raise SpecError(f"{prefix}{key}: unknown key; allowed: {', '.join(sorted(allowed))}")


def _get(values: dict, key: str, kind: type, default: Any = ..., prefix: str = "") -> Any:
    if key not in values:
        if default is ...:
            raise SpecError(f"{prefix}{key}: required")
        return default
    value = values[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise SpecError(f"{prefix}{key}: expected {kind.__name__}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{prefix}{key}: {value} is not a finite number")
    return value


def _positive(value: int, key: str) -> int:
    if value < 1:
        raise SpecError(f"{key}: {value} must be ≥ 1")
    return value


def _list_of_str(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{key}: expected a list of Hydra overrides such as 'model.latent_channels=4'")
    for item in value:
        if "_target_" in item or item.startswith(("hydra.", "+hydra")):
            raise SpecError(f"{key}: {item!r}: study specs cannot instantiate objects or change Hydra itself")
    return value


def _objectives(value: Any) -> tuple[Objective, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError("objectives: expected a non-empty list such as [{metric: dice, mode: max}]")
    out = []
    for i, item in enumerate(value):
        item = _mapping(item, f"objectives[{i}]")
        _known(item, f"objectives[{i}].", {"metric", "mode"})
        metric = _get(item, "metric", str, prefix=f"objectives[{i}].")
        if metric not in METRICS:
            raise SpecError(f"objectives[{i}].metric: {metric!r} is not one of {', '.join(sorted(METRICS))}")
        mode = _get(item, "mode", str, METRICS[metric], prefix=f"objectives[{i}].")
        if mode not in ("min", "max"):
            raise SpecError(f"objectives[{i}].mode: {mode!r} must be min or max")
        out.append(Objective(metric, mode))
    if len({o.metric for o in out}) != len(out):
        raise SpecError("objectives: each metric may appear once")
    return tuple(out)


def _parameter(key: Any, value: Any) -> Parameter:
    where = f"search.{key}"
    if not isinstance(key, str) or not re.match(r"^(model|train)\.[a-z_]+$", key):
        raise SpecError(f"{where}: searched keys are model.<key> or train.<key>")
    value = _mapping(value, where)
    _known(value, f"{where}.", {"type", "low", "high", "choices", "when"})
    kind = _get(value, "type", str, prefix=f"{where}.")
    if kind not in PARAM_TYPES:
        raise SpecError(f"{where}.type: {kind!r} is not one of {', '.join(PARAM_TYPES)}")
    when = tuple(_mapping(value.get("when", {}), f"{where}.when").items())
    if kind == "categorical":
        choices = value.get("choices")
        if not isinstance(choices, list) or not choices or any(isinstance(c, (dict, list)) for c in choices):
            raise SpecError(f"{where}.choices: expected a non-empty list of plain values")
        kinds = {type(c) for c in choices}
        if len(kinds) > 1 and kinds != {int, float}:
            raise SpecError(f"{where}.choices: {choices} mixes types; use one type (numbers, strings or booleans)")
        return Parameter(key, kind, choices=tuple(choices), when=when)
    number = int if kind == "int" else float
    low = _get(value, "low", number, prefix=f"{where}.")
    high = _get(value, "high", number, prefix=f"{where}.")
    if not low < high:
        raise SpecError(f"{where}: low={low} must be below high={high}")
    if kind == "log_float" and low <= 0:
        raise SpecError(f"{where}.low: {low} must be > 0 for a log-uniform range")
    return Parameter(key, kind, float(low), float(high), when=when)


def _budget(value: Any) -> dict[str, int]:
    allowed = {"ae_steps", "image_ae_steps", "prior_steps", "diffusion_steps", "batch_size", "log_every"}
    budget = _mapping(value, "budget")
    _known(budget, "budget.", allowed)
    for key in budget:
        v = _get(budget, key, int, prefix="budget.")
        if v < (1 if key in ("batch_size", "log_every") else 0):
            raise SpecError(f"budget.{key}: {v} must not be negative" + (" or zero" if key != "ae_steps" else ""))
    return dict(budget)


def _section(value: Any, kind: type, key: str) -> Any:
    values = _mapping(value, key)
    defaults = kind()
    _known(values, f"{key}.", {f.name for f in fields(kind)})
    typed = {
        f.name: _get(values, f.name, type(getattr(defaults, f.name)), getattr(defaults, f.name), f"{key}.")
        for f in fields(kind)
    }
    return kind(**typed)


def _check_sections(spec: StudySpec) -> None:
    r, e, p = spec.resources, spec.evaluation, spec.pruning
    for name in ("workers", "concurrent_trials"):
        _positive(getattr(r, name), f"resources.{name}")
    if r.cpus_per_worker <= 0 or r.gpus_per_worker < 0 or r.trial_cpus < 0 or r.max_failures < -1:
        raise SpecError(
            "resources: cpus_per_worker must be > 0, gpus_per_worker and trial_cpus ≥ 0, "
            "max_failures ≥ -1 (-1: unlimited)"
        )
    if r.placement not in ("pack", "spread"):
        raise SpecError(f"resources.placement: {r.placement!r} must be pack or spread")
    for name in ("samples", "steps", "images"):
        _positive(getattr(e, name), f"evaluation.{name}")
    if e.split not in ("val", "test"):
        raise SpecError(f"evaluation.split: {e.split!r} must be val or test")
    if p.kind not in ("none", "asha", "median"):
        raise SpecError(f"pruning.kind: {p.kind!r} must be none, asha or median")
    _positive(p.grace_period, "pruning.grace_period")
    if p.metric not in PRUNING_METRICS:
        raise SpecError(f"pruning.metric: {p.metric!r} must be one of {', '.join(PRUNING_METRICS)}")
    for name in ("every", "images", "steps"):
        _positive(getattr(p, name), f"pruning.{name}")
    keys = {q.key for q in spec.search}
    for key in spec.reference:
        if key not in keys:
            raise SpecError(f"reference.{key}: not a searched key; the reference is a point of the search space")
    for q in spec.search:
        for other, _ in q.when:
            if other not in keys and other not in {o.split("=")[0] for o in spec.base}:
                raise SpecError(f"search.{q.key}.when: {other!r} is neither searched nor set in base")


def _check_against_config(spec: StudySpec) -> None:
    """Compose the base config and one config per parameter extreme: names and types must be valid."""
    candidates: list[dict[str, Any]] = [{}] + [{q.key: v} for q in spec.search for v in (q.choices or (q.low, q.high))]
    for params in candidates:
        conditions = {k: v for q in spec.search if q.key in params for k, v in q.when}
        try:
            load_config(spec.overrides({**conditions, **params}))
        except ConfigError as exc:
            where = f"search.{next(iter(params))}" if params else "base"
            raise SpecError(f"{where}: {exc}") from None
