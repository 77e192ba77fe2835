"""Clips written at test time with chosen presentation times: variable frame rates on demand (PyAV)."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np


def write_timed_clip(path: Path, times_ms: list[int]) -> Path:
    """A 64x48 MPEG-4 clip whose frame i is shown at times_ms[i] and is grey level 25 * i (mod 250)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 25 * i % 250, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, fractions.Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
