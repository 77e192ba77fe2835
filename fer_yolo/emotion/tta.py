"""Test-time augmentation modes of the emotion head, importable without torch (the CLI offers them).

The views themselves are made by emotion.preprocess.tta_views.
"""

from __future__ import annotations

#: Test-time augmentation modes: the views whose softmax outputs are averaged.
TTA_MODES: tuple[str, ...] = ("none", "flip", "multicrop")
