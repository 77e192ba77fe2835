"""Configuration: fer_yolo/cfg/default.yaml < --config FILE < command-line flags, checked once."""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fer_yolo.emotion.tta import TTA_MODES
from fer_yolo.errors import ConfigError

INF = float("inf")
# Inclusive numeric ranges, checked once the config is assembled: out of range is refused, never clamped.
# (convert checks its own section in data.convert.engine.ConvertSettings.check.)
BOUNDS: dict[str, tuple[float, float]] = {
    "pipeline.imgsz": (32, 4096),
    "pipeline.conf": (0, 1),
    "pipeline.low_conf": (0, 1),
    "pipeline.iou": (0, 1),
    "pipeline.max_faces": (1, INF),
    "pipeline.margin": (0, 2),
    "pipeline.classify_every": (1, INF),
    "pipeline.track_buffer_s": (0, INF),
    "pipeline.smoothing_s": (0, INF),
    "pipeline.threads": (0, 1024),
    "stream.vid_stride": (1, INF),
    "stream.batch": (1, INF),
    "stream.max_frames": (0, INF),
    "serve.port": (0, 65535),
    "serve.max_image_mb": (0.001, INF),
    "serve.max_image_mp": (0.01, 1000),
    "serve.max_image_side": (32, 65536),
    "serve.max_image_requests": (1, INF),
    "serve.max_video_mb": (0.001, INF),
    "serve.max_video_frames": (1, INF),
    "serve.job_ttl_s": (0, INF),
    "serve.max_jobs": (1, INF),
    "batch.workers": (0, INF),
    "batch.cpus_per_worker": (0.01, INF),
    "batch.gpus_per_worker": (0, INF),
    "batch.segment_s": (0, INF),
    "batch.max_retries": (0, INF),
    "train_emotion.input_size": (16, 1024),
    "train_emotion.epochs": (1, INF),
    "train_emotion.batch": (2, INF),
    "train_emotion.lr": (1e-9, INF),
    "train_emotion.label_smoothing": (0, 1),
    "train_emotion.ema_decay": (0, 1),
    "train_emotion.patience": (1, INF),
    "train_emotion.threads": (0, INF),
    "train_detector.imgsz": (32, 4096),
    "train_detector.epochs": (1, INF),
    "train_detector.freeze": (0, INF),
    "eval_detector.imgsz": (32, 4096),
    "eval_detector.conf": (0, 1),
    "eval_detector.max_det": (1, INF),
    "eval_detector.limit": (0, INF),
    "eval_detector.threads": (1, INF),
    "eval_detector.speed_passes": (0, INF),
    "export.opset": (11, 21),
    "export.calib_size": (1, INF),
    "export.calib_images": (1, INF),
}
#: Keys whose value is one of a few words, checked once the config is assembled (detectors: check_detector).
CHOICES: dict[str, tuple[str, ...]] = {
    "pipeline.backend": ("auto", "torch", "onnx"),
    "pipeline.tta": TTA_MODES,
    "eval_emotion.tta": TTA_MODES,
}


@functools.cache
def _defaults_text() -> str:
    return resources.files("fer_yolo.cfg").joinpath("default.yaml").read_text()


def defaults() -> dict:
    """The packaged defaults (a fresh copy)."""
    return yaml.safe_load(_defaults_text())


def key_help(key: str) -> str:
    """What default.yaml says `key` (section.name) means: its comment, for the hint of an error about it.

    Example:
        >>> key_help("stream.vid_stride")
        'stream.vid_stride: (int) video files: process every n-th frame'
    """
    section, name = key.split(".")
    current = None
    for line in _defaults_text().splitlines():
        if line[:1].isalpha():
            current = line.split(":")[0]
        elif current == section and line.startswith(f"  {name}:") and "#" in line:
            return f"{key}: {line.split('#', 1)[1].strip()}"
    return f"{key}: see fer_yolo/cfg/default.yaml"


@functools.cache
def shared_defaults() -> dict:
    """The packaged defaults, read once: never change the dict it returns (`defaults` gives a copy)."""
    return defaults()


def default_of(value: Any, key: str) -> Any:
    """`value`, or where it is None the default of `key` (section.name): a setting left out of a library call
    means what it means on the command line.

    Example:
        >>> default_of(None, "export.opset"), default_of(13, "export.opset")
        (17, 13)
    """
    section, name = key.split(".")
    return shared_defaults()[section][name] if value is None else value


def pipeline_default(value: Any, key: str) -> Any:
    """`value`, or where it is None the default of `pipeline.<key>`: a setting left out of a stage's
    constructor (detector, emotion head, tracker, smoother, pipeline) means what it means on the command line.

    Example:
        >>> pipeline_default(None, "conf"), pipeline_default(0.6, "conf")
        (0.4, 0.6)
    """
    return default_of(value, f"pipeline.{key}")


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
    names = isinstance(default, list) and all(isinstance(d, str) for d in default)  # paths, names (or [])
    if names and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [value] if value != "" else []  # one item (`source: clip.mp4`, YAML's `source: 0`); "": none
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
        if key not in base:  # `--set conf=0.5`: a key of a section, named without it
            sections = {part: keys for part, keys in base.items() if isinstance(keys, dict)}
            owners = [f"{part}.{key}" for part, keys in sections.items() if key in keys]
            close = owners or [f"{prefix}{c}" for c in difflib.get_close_matches(key, list(base), n=3)]
            raise ConfigError(
                f"unknown config key {name!r}",
                f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(sorted(base))}",
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
    cfg = merge(cfg, _drop_none(overrides or {}))
    check_bounds(cfg)
    check_choices(cfg)
    check_detector(cfg)
    return cfg


def check_detector(cfg: dict) -> None:
    """Raise ConfigError for an unknown `pipeline.detector`, or one whose weights the user must supply
    (yunet, scrfd) given without `pipeline.detector_weights`.

    Example:
        >>> check_detector({"pipeline": {"detector": "yunet", "detector_weights": ""}})
        Traceback (most recent call last):
        ...
        fer_yolo.errors.ConfigError: pipeline.detector yunet needs pipeline.detector_weights (its .onnx file)
          hint: pass --weights PATH or --set pipeline.detector_weights=PATH (fer-yolo ships no yunet weights)
    """
    from fer_yolo.detectors import DETECTORS, USER_WEIGHTS  # the names only: no model library is loaded

    pipeline = cfg.get("pipeline", {})
    name = pipeline.get("detector")
    if name is None:
        return
    if name not in DETECTORS:
        close = difflib.get_close_matches(name, list(DETECTORS), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"choose one of {sorted(DETECTORS)}"
        raise ConfigError(f"pipeline.detector must be one of {sorted(DETECTORS)}, got {name!r}", hint)
    if name in USER_WEIGHTS and not pipeline.get("detector_weights"):
        raise ConfigError(
            f"pipeline.detector {name} needs pipeline.detector_weights (its .onnx file)",
            f"pass --weights PATH or --set pipeline.detector_weights=PATH (fer-yolo ships no {name} weights)",
        )


def check_choices(cfg: dict) -> None:
    """Raise ConfigError for the first value of `cfg` that is not one of its CHOICES.

    Example:
        >>> check_choices({"pipeline": {"tta": "mirror"}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fer_yolo.errors.ConfigError: pipeline.tta must be one of ('none', 'flip', 'multicrop'), got 'mirror'
          hint: pipeline.tta: (str) emotion test-time augmentation: none | flip (face + mirror...) | multicrop
    """
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = cfg.get(section, {}).get(name)
        if value is not None and value not in choices:
            raise ConfigError(f"{key} must be one of {choices}, got {value!r}", key_help(key))


def check_bounds(cfg: dict) -> None:
    """Raise ConfigError for the first value of `cfg` outside its range in BOUNDS.

    Example:
        >>> check_bounds({"stream": {"vid_stride": 0}})
        Traceback (most recent call last):
        ...
        fer_yolo.errors.ConfigError: stream.vid_stride must be >= 1, got 0
          hint: stream.vid_stride: (int) video files: process every n-th frame
    """
    for key, (low, high) in BOUNDS.items():
        section, name = key.split(".")
        value = cfg.get(section, {}).get(name)
        if value is None or low <= value <= high:
            continue
        hint = key_help(key)
        if high == INF:
            raise ConfigError(f"{key} must be >= {low:g}, got {value!r}", hint)
        raise ConfigError(f"{key} must be in [{low:g}, {high:g}], got {value!r}", hint)


def _drop_none(d: dict) -> dict:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def deep_update(base: dict, extra: dict) -> dict:
    """`base` with `extra`'s keys set, nested mappings updated key by key (no checks: see `merge`).

    Example:
        >>> deep_update({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
        {'a': {'b': 1, 'c': 3}}
    """
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_update(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


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
