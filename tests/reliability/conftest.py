"""What the probes of `serve` share: one pipeline on the shipped weights, and configs around it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fer_yolo.config import load_config
from fer_yolo.pipeline import Pipeline


@pytest.fixture(scope="session")
def serve_config(face_weights: Path, emotion_weights: Path) -> Callable[..., dict]:
    """`serve_config(**serve)`: the whole config with the shipped weights and these `serve` settings."""

    def build(**serve) -> dict:
        over = {"pipeline": {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights)}}
        return load_config(overrides=over | {"serve": serve})

    return build


@pytest.fixture(scope="session")
def serve_pipeline(serve_config: Callable[..., dict]) -> Pipeline:
    """One pipeline for every app the probes build (loading the models once)."""
    return Pipeline.from_config(serve_config()["pipeline"])
