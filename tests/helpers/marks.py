"""Shared pytest marks."""

from pathlib import Path

import pytest

#: For the tests that expect webcam 0 not to open.
NO_WEBCAM = pytest.mark.skipif(Path("/dev/video0").exists(), reason="a webcam is attached")
