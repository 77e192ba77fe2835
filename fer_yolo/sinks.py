"""Outputs of a run: annotated video, per-face timeline (JSON Lines + CSV) and the end-of-run summary.

Every sink is a context manager writing under a temporary name that replaces the final name on close,
so an interrupted run (Ctrl-C) still leaves complete, playable files and never a half-written one.
Timelines are appended as they go; in memory, nothing grows with the length of a run but the summary's
entry for each track (its chart's time buckets widen instead: at most MAX_CHART_BUCKETS of them).
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from fer_yolo.annotation import EMOTION_COLORS
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.errors import FerYoloError
from fer_yolo.faces import CSV_COLUMNS, FaceRecord, csv_rows
from fer_yolo.utils.io import atomic_path, write_json
from fer_yolo.utils.signals import deferred_interrupt

#: The longest time one frame of a video or stream counts for in a summary, unless its frame interval is
#: longer: a longer gap between two frames is an outage (a stream reconnecting: at least a 0.5 s wait and a
#: 5 s timeout; a batch segment that failed), not time the faces were seen. A slow pipeline on a live
#: source (frames a second or more apart) stays below it.
MAX_FRAME_S = 5.0
#: The most time buckets a run summary's chart keeps: past this, its buckets double in width (2 s, 4 s, ...),
#: so a stream watched for weeks holds about as much as one watched for an hour.
MAX_CHART_BUCKETS = 3600
#: Video codec by file suffix: mp4v plays everywhere but in browsers, VP8 WebM plays in browsers.
FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".webm": "VP80"}


class VideoSink:
    """Writes BGR frames to a video at the source's fps and size (codec from the suffix, see FOURCC).

    Args:
        path: Output .mp4, .avi or .webm.
        fps: Frames per second written in the file.
        resolution_wh: (width, height); frames of another size are resized.
    """

    def __init__(self, path: str | Path, fps: float, resolution_wh: tuple[int, int]) -> None:
        self.path, self.fps, self.resolution_wh = Path(path), float(fps), tuple(resolution_wh)
        self.frames = 0

    def __enter__(self) -> VideoSink:
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))  # keeps the .mp4 suffix for the muxer
        fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(self.path.suffix.lower(), "mp4v"))
        self.writer = cv2.VideoWriter(str(tmp), fourcc, self.fps, self.resolution_wh)
        self._stack.callback(self.writer.release)
        if not self.writer.isOpened():
            err = FerYoloError(
                f"cannot write {self.path} (size {self.resolution_wh}, {self.fps:g} fps)",
                "use another suffix (.mp4, .avi, .webm) or --no-save",
            )
            self._stack.__exit__(type(err), err, None)  # the temporary file is discarded, nothing published
            raise err
        return self

    def write(self, image: np.ndarray) -> None:
        if image.shape[1::-1] != self.resolution_wh:
            image = cv2.resize(image, self.resolution_wh, interpolation=cv2.INTER_AREA)
        self.writer.write(image)
        self.frames += 1

    def __exit__(self, *exc) -> None:
        with deferred_interrupt():  # finalise even when Ctrl-C ends the run; a second one lands after
            self._stack.__exit__(None, None, None)


class TimelineSink:
    """Per-frame JSON Lines ({"frame", "t_s", "source", "faces": [...]}) and a per-face CSV (CSV_COLUMNS: the
    frame's source as `file`, then the face).

    Args:
        jsonl: JSON Lines path, or None.
        csv_path: CSV path, or None.
    """

    def __init__(self, jsonl: str | Path | None, csv_path: str | Path | None) -> None:
        self.jsonl_path = Path(jsonl) if jsonl else None
        self.csv_path = Path(csv_path) if csv_path else None

    def __enter__(self) -> TimelineSink:
        self._stack = contextlib.ExitStack()
        self._jsonl = self._open(self.jsonl_path)
        csv_file = self._open(self.csv_path)
        self._csv = csv.DictWriter(csv_file, fieldnames=CSV_COLUMNS) if csv_file else None
        if self._csv:
            self._csv.writeheader()
        return self

    def _open(self, path: Path | None):
        if path is None:
            return None
        tmp = self._stack.enter_context(atomic_path(path))
        return self._stack.enter_context(open(tmp, "w", newline=""))

    def write(self, frame_index: int, t_s: float, records: list[FaceRecord], source: str) -> None:
        rows = [r.to_row() for r in records]
        if self._jsonl:
            record = {"frame": int(frame_index), "t_s": round(float(t_s), 3), "source": source, "faces": rows}
            self._jsonl.write(json.dumps(record) + "\n")
        if self._csv:
            self._csv.writerows(csv_rows(source, rows))

    def __exit__(self, *exc) -> None:
        with deferred_interrupt():  # finalise even when Ctrl-C ends the run; a second one lands after
            self._stack.__exit__(None, None, None)


class EmotionSeconds:
    """Faces per top emotion in each time bucket: the run summary's chart and the live page's.

    Args:
        max_buckets: The most buckets kept: past it, buckets double in width and merge (a long run's chart,
            in bounded memory). None: one bucket a second, however many (the live page drops old ones).
    """

    def __init__(self, max_buckets: int | None = None) -> None:
        self.width = 1  # seconds a bucket spans
        self.max_buckets = max_buckets
        self.buckets: dict[int, Counter] = defaultdict(Counter)  # a bucket's first second -> emotion -> faces
        self._total: Counter = Counter()

    def add(self, t_s: float, emotions: Iterable[str]) -> None:
        emotions = list(emotions)
        self.buckets[int(t_s) // self.width * self.width].update(emotions)
        self._total.update(emotions)
        while self.max_buckets and len(self.buckets) > self.max_buckets:  # sparse times: may take several
            self.width *= 2
            merged: dict[int, Counter] = defaultdict(Counter)
            for start, counts in self.buckets.items():
                merged[start // self.width * self.width].update(counts)
            self.buckets = merged

    def total(self) -> Counter:
        """Emotion -> faces it was the top emotion of, over every bucket kept."""
        return self._total.copy()

    def drop_before(self, second: int) -> None:
        """Forget the buckets that start before `second` (a rolling window)."""
        for s in [s for s in self.buckets if s < second]:
            self._total.subtract(self.buckets.pop(s))
        self._total = +self._total  # no zero counts left behind


class RunSummary:
    """Faces per top emotion, per-track dominant emotion and durations, and emotion shares over time (per
    second, or per wider bucket past MAX_CHART_BUCKETS), built as frames pass.

    Args:
        fps: Source frame rate (a face seen in one frame counts 1/fps seconds), or None (images).
    """

    def __init__(self, fps: float | None) -> None:
        self.fps = fps
        self.frames = 0
        self._last_t: float | None = None
        self.tracks: dict[int, dict] = {}
        self.seconds = EmotionSeconds(MAX_CHART_BUCKETS)

    @property
    def emotions(self) -> Counter:
        """Emotion -> faces it was the top emotion of (a face in n frames counts n times)."""
        return self.seconds.total()

    @property
    def faces(self) -> int:
        """Faces seen so far (a face in n frames counts n times)."""
        return self.emotions.total()

    def add(self, t_s: float, records: list[FaceRecord]) -> None:
        """Count one frame at `t_s` (seconds, as its records hold it) and its faces."""
        # Each frame stands for the time since the previous one (1/fps for the first), up to MAX_FRAME_S:
        # right for strided files and for live sources that drop frames. Times as records hold them (ms), so
        # a summary rebuilt from a timeline (fer-yolo batch) equals the one written beside it.
        t_s = round(float(t_s), 3)
        interval = 1 / self.fps if self.fps else 0.0
        if self._last_t is None:
            dt = interval or min(t_s, MAX_FRAME_S)
        else:
            dt = min(max(0.0, t_s - self._last_t), max(MAX_FRAME_S, interval))
        self._last_t = t_s
        self.frames += 1
        read = [r for r in records if r.emotion is not None]
        self.seconds.add(t_s, (r.emotion for r in read))
        for r in read:
            if r.track_id is None or r.track_id < 0:
                continue
            track = self.tracks.setdefault(r.track_id, {"first_t_s": t_s, "frames": 0, "seconds": Counter()})
            track["last_t_s"] = t_s
            track["frames"] += 1
            track["seconds"][r.emotion] += dt

    def to_dict(self) -> dict:
        tracks = []
        for tid, t in sorted(self.tracks.items()):
            dominant, _ = t["seconds"].most_common(1)[0]
            tracks.append(
                {
                    "track_id": tid,
                    "first_t_s": round(t["first_t_s"], 3),
                    "last_t_s": round(t["last_t_s"], 3),
                    "frames": t["frames"],
                    "dominant_emotion": dominant,
                    "emotion_s": {e: round(t["seconds"][e], 2) for e in EMOTIONS if t["seconds"][e]},
                }
            )
        emotions = self.emotions
        return {
            "frames": self.frames,
            "fps": self.fps,
            "faces": emotions.total(),
            "emotions": {e: emotions[e] for e in EMOTIONS if emotions[e]},
            "tracks": tracks,
        }

    def write(self, json_path: str | Path, png_path: str | Path | None) -> None:
        """Write the summary JSON and, when there were faces, its chart: emotions over time for a video or
        stream, faces per emotion for an image set (else remove an earlier run's chart at that path, e.g. a
        batch output written again)."""
        write_json(json_path, self.to_dict())
        if png_path and self.faces:
            self._plot(Path(png_path))
        elif png_path:
            Path(png_path).unlink(missing_ok=True)

    def _plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        colors = [np.array(EMOTION_COLORS.by_idx(k).as_rgb()) / 255 for k in range(len(EMOTIONS))]
        if self.fps is None:  # photos: no time axis
            fig, ax = plt.subplots(figsize=(7, 3.5))
            ax.bar(EMOTIONS, [self.emotions[e] for e in EMOTIONS], color=colors)
            ax.set_ylabel("faces"), ax.set_title(f"Faces per emotion ({self.faces} faces)")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 0.5 face
        else:
            fig, ax = self._plot_over_time(plt, colors)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)

    def _plot_over_time(self, plt, colors: list) -> tuple:
        buckets, width = self.seconds.buckets, self.seconds.width
        seconds = np.arange(min(buckets), max(buckets) + width, width)
        counts = np.array([[buckets.get(s, Counter())[e] for e in EMOTIONS] for s in seconds], float)
        shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        # repeat the last bucket so the "post" step plot draws it too
        seconds, shares = np.append(seconds, seconds[-1] + width), np.vstack([shares, shares[-1:]])
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.stackplot(seconds, shares.T, labels=EMOTIONS, colors=colors, step="post")
        ax.set_xlabel("time (s)"), ax.set_ylabel("share of faces"), ax.set_ylim(0, 1)
        ax.set_xlim(seconds[0], seconds[-1])
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_title(f"Emotions over time (faces per {'second' if width == 1 else f'{width} s'})")
        return fig, ax
