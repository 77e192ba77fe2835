"""Configuration: fer_yolo/cfg/default.yaml < --config FILE < command-line flags, checked once."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fer_yolo.errors import ConfigError


def defaults() -> dict:
    """The packaged defaults (a fresh copy)."""
    return yaml.safe_load(resources.files("fer_yolo.cfg").joinpath("default.yaml").read_text())


def _check_type(key: str, value: Any, default: Any) -> Any:
    if default is None:
        return value
    if value is None:  # `key:` left empty in a YAML file
        if isinstance(default, (str, list)):
            return type(default)()  # "" / []: nothing, as the defaults write it
        raise ConfigError(f"{key} has no value", f"give a {type(default).__name__} or leave the key out")
    if isinstance(default, float) and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # YAML and --set read a webcam index (source: 0) as a number
    if isinstance(default, list) and isinstance(value, tuple):
        return list(value)
    if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
        raise ConfigError(f"{key} must be {type(default).__name__}, got {value!r}")
    return value


def merge(base: dict, override: dict, prefix: str = "") -> dict:
    """Return `base` updated by `override`, rejecting unknown keys and wrong types.

    Raises:
        ConfigError: a key not in `base` (with close matches as the hint), or a value whose type
            differs from the default's.
    """
    out = dict(base)
    for key, value in override.items():
        name = f"{prefix}{key}"
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=3)
            raise ConfigError(
                f"unknown config key {name!r}",
                f"did you mean {close}?" if close else f"known: {sorted(base)}",
            )
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping, got {value!r}")
            out[key] = merge(base[key], value, f"{name}.")
        else:
            out[key] = _check_type(name, value, base[key])
    return out


def load_config(files: list[str | Path] | tuple = (), overrides: dict | None = None) -> dict:
    """Defaults, then each YAML file, then `overrides` (a nested dict; None values are ignored).

    Raises:
        ConfigError: unreadable file, unknown key or wrong type.

    Example:
        >>> load_config(overrides={"convert": {"size": 64}})["convert"]["size"]
        64
    """
    cfg = defaults()
    for file in files:
        path = Path(file)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path} must be a mapping of sections")
        cfg = merge(cfg, loaded)
    return merge(cfg, _drop_none(overrides or {}))


def _drop_none(d: dict) -> dict:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def parse_assignment(text: str) -> dict:
    """'a.b=value' -> {'a': {'b': value}}, the value parsed as YAML (never eval'd); 'a.b=' sets ''."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    value: Any = yaml.safe_load(raw)
    if value is None:  # key= or key=null: an empty value, not "not given" (None overrides are dropped)
        value = ""
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value
