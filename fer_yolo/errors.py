"""Errors raised by fer-yolo: a message saying what failed, plus a hint saying what to do."""

from __future__ import annotations


class FerYoloError(Exception):
    """Base class of every error fer-yolo raises on purpose.

    Args:
        message: What failed, naming the value or path involved.
        hint: What the user can do about it (a command to run, a flag to pass).
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(FerYoloError):
    """An unknown key, a value of the wrong type or out of range."""


class DatasetError(FerYoloError):
    """A dataset that is missing, empty or not in a layout fer-yolo knows."""


class MissingSplit(DatasetError):
    """A dataset without the split asked for (val and test are optional; an unreadable split is not this)."""


class WeightsError(FerYoloError):
    """A weights file that is missing, unreadable or of the wrong kind."""


class SourceError(FerYoloError):
    """A video, stream, camera or image source that cannot be opened or read."""


class UnreadableSource(SourceError):
    """A video file or image list that opened but yielded no frame (truncated, corrupt, not an image)."""
