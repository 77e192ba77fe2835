"""A pickled object that runs code when loaded: for the tests that weight files are read safely."""

from pathlib import Path


class CodeRunningPayload:
    """Unpickling it touches `marker`: the file exists afterwards only if a loader ran stored code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))
