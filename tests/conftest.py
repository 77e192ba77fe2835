"""Shared fixtures: the real data folder (skips cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_yolo.utils.paths import data_root as _data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    """../shared/data (or $FER_YOLO_DATA); tests using it skip when it is not on this machine."""
    root = _data_root(required=False)
    if root is None:
        pytest.skip("real data not found: set FER_YOLO_DATA or put it at ../shared/data")
    return root


@pytest.fixture(scope="session")
def media(data_root: Path) -> Path:
    """../shared/data/media: real photos and videos with faces."""
    return data_root / "media"
