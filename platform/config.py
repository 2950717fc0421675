"""Compose platform/conf/ with Hydra (overrides from the command line or a study) into `Config`."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path
from platform.config_types import Config
from platform.errors import ConfigError

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONF_DIR = Path(__file__).parent / "conf"


def load_config(overrides: Sequence[str] = ()) -> Config:
    """Compose `conf/config.yaml` with Hydra `overrides` (e.g. `data=ph2 model.latent_factor=8`).

    Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
    # The schema makes Hydra check every YAML file and override against the dataclasses.
    ConfigStore.instance().store(name="config_schema", node=Config)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            composed = compose(config_name="config", overrides=list(overrides))
        _reject_unknown_keys(OmegaConf.to_container(composed), Config, "")
        config = OmegaConf.to_object(composed)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from None
    assert isinstance(config, Config)
    return config


def load_run_config(path: Path, overrides: Sequence[str] = ()) -> Config:
    """The resolved config saved in a run folder (`config.yaml`), with dotted `overrides` applied.

    Raises ConfigError naming the file or key."""
    if not path.is_file():
        raise ConfigError(f"{path}: run config not found (is this a run folder?)")
    try:
        saved = OmegaConf.merge(
            OmegaConf.structured(Config), OmegaConf.load(path), OmegaConf.from_dotlist(list(overrides))
        )
        config = OmegaConf.to_object(saved)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{path}: {_one_line(exc)}") from None
    assert isinstance(config, Config)
    return config


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML, as saved in every run folder."""
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def _reject_unknown_keys(values: object, schema: type, prefix: str) -> None:
    """`+key=value` slips past Hydra's schema check; name the first key no dataclass declares."""
    if not isinstance(values, dict):
        return
    hints = typing.get_type_hints(schema)
    fields = [f.name for f in dataclasses.fields(schema)]
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(fields)}")
        if isinstance(hints[key], type) and dataclasses.is_dataclass(hints[key]):
            _reject_unknown_keys(value, hints[key], f"{prefix}{key}.")


def _one_line(exc: BaseException) -> str:
    text = str(exc) if exc.__cause__ is None else f"{exc}: {exc.__cause__}"
    text = text.split("Config search path:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    keep = [line for line in lines if not line.startswith(("full_key:", "object_type", "reference_type"))]
    key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), "")
    message = "; ".join(keep) or type(exc).__name__
    return f"{key}: {message}" if key and key not in message else message
