"""Configuration: defaults < files < overrides, unknown keys and wrong types rejected."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_yolo.config import defaults, load_config, parse_assignment
from fer_yolo.errors import ConfigError


def test_precedence_defaults_file_overrides(tmp_path: Path):
    file = tmp_path / "my cfg.yaml"
    file.write_text("convert:\n  size: 64\n  color: true\n")
    cfg = load_config([file], {"convert": {"size": 96, "seed": None}})
    assert cfg["convert"]["size"] == 96 and cfg["convert"]["color"] is True and cfg["convert"]["seed"] == 0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"convert": {"sise": 3}}, "did you mean \\['size'\\]"),
        ({"convert": {"size": "big"}}, "convert.size must be int"),
        ({"convert": {"color": 1}}, "convert.color must be true or false"),
        ({"nonsense": {}}, "unknown config key 'nonsense'"),
        ({"train_emotion": {"augment": 3}}, "must be a mapping"),
    ],
)
def test_bad_values_are_rejected(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_int_is_accepted_for_float_and_set_parses_yaml():
    assert load_config(overrides={"convert": {"margin": 1}})["convert"]["margin"] == 1.0
    assert parse_assignment("train_emotion.augment.flip=0") == {"train_emotion": {"augment": {"flip": 0}}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignment("convert.size")


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_load(path: Path):
    """Every recipe under configs/ passes the checks a `--config` run would hit first (keys, types)."""
    sections, default = load_config([path]), defaults()
    assert {"train_emotion", "train_detector"} & {k for k, v in sections.items() if v != default[k]}
