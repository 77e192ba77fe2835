"""Configuration: defaults < files < overrides, unknown keys and wrong types rejected."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
        ({"convert": {"sise": 3}}, r"did you mean convert\.size\?"),
        ({"convert": {"size": "big"}}, "convert.size must be int"),
        ({"convert": {"color": 1}}, "convert.color must be true or false"),
        ({"nonsense": {}}, "unknown config key 'nonsense'"),
        ({"conf": 0.5}, r"did you mean eval_detector\.conf or pipeline\.conf\?"),  # --set conf=0.5
        ({"train_emotion": {"margin_range": 0.1}}, "train_emotion.margin_range must be list"),  # of numbers
        ({"train_emotion": {"augment": 3}}, "must be a mapping"),
        ({"train_emotion": {"epochs": None}}, "train_emotion.epochs has no value"),
        ({"train_emotion": {"lr": "fast"}}, "train_emotion.lr must be float"),
        ({"pipeline": {"conf": 7}}, r"pipeline.conf must be in \[0, 1\], got 7.0"),
        ({"pipeline": {"imgsz": -5}}, r"pipeline.imgsz must be in \[32, 4096\], got -5"),
        ({"stream": {"vid_stride": 0}}, "stream.vid_stride must be >= 1, got 0"),
        ({"stream": {"max_frames": -1}}, "stream.max_frames must be >= 0, got -1"),
        ({"stream": {"batch": 0}}, "stream.batch must be >= 1"),
        ({"train_emotion": {"epochs": 0}}, "train_emotion.epochs must be >= 1"),
        ({"pipeline": {"tta": "mirror"}}, "pipeline.tta must be one of \\('none', 'flip', 'multicrop'\\)"),
        ({"pipeline": {"backend": "tensorrt"}}, "pipeline.backend must be one of"),
        ({"eval_emotion": {"tta": "both"}}, "eval_emotion.tta must be one of"),
        ({"eval_detector": {"threads": 0}}, "eval_detector.threads must be >= 1"),
        ({"export": {"calib_size": 0}}, "export.calib_size must be >= 1"),
    ],
)
def test_bad_values_are_rejected(overrides, match, tmp_path: Path):
    file = tmp_path / "cfg.yaml"  # from a file: a None override would mean "not given"
    file.write_text(yaml.safe_dump(overrides))
    with pytest.raises(ConfigError, match=match):
        load_config([file])


def test_int_is_accepted_for_float_and_set_parses_yaml():
    assert load_config(overrides={"convert": {"margin": 1}})["convert"]["margin"] == 1.0
    assert parse_assignment("train_emotion.augment.flip=0") == {"train_emotion": {"augment": {"flip": 0}}}
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignment("convert.size")


def test_empty_values_and_exponents_read_as_meant(tmp_path: Path):
    file = tmp_path / "cfg.yaml"
    file.write_text("train_emotion:\n  init: weights/x.pt\n  lr: 1e-3\n  teachers:\n")
    cfg = load_config([file])["train_emotion"]
    assert cfg["lr"] == 0.001 and cfg["teachers"] == [] and cfg["init"] == "weights/x.pt"
    for text in ("train_emotion.init=", "train_emotion.init=null"):  # no init, rather than the file's
        assert load_config([file], parse_assignment(text))["train_emotion"]["init"] == ""
    # a list of paths or names given one value (`source: 0`, the webcam): that one item; "": none
    for value, items in [("0", [0]), ("a b.mp4", ["a b.mp4"]), ("", [])]:
        assert load_config(overrides=parse_assignment(f"stream.source={value}"))["stream"]["source"] == items


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_load(path: Path):
    """Every recipe under configs/ passes the checks a `--config` run would hit first (keys, types)."""
    sections, default = load_config([path]), defaults()
    assert {"train_emotion", "train_detector"} & {k for k, v in sections.items() if v != default[k]}
