"""The batch worker: one pipeline, loaded once, running unit after unit (a Ray actor in `fer-yolo batch`).

It knows no Ray: run.py makes it an actor, and tests can call it in-process. Each unit goes through
runner.process_source, the same code as `fer-yolo predict`, into a temporary folder whose files come back
to the driver, so workers need no shared output folder (their inputs must be readable where they run).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.batch.units import Unit
from fer_yolo.errors import FerYoloError
from fer_yolo.pipeline import Pipeline
from fer_yolo.runner import process_source
from fer_yolo.sources import FrameSource, ImageSource, VideoFileSource

#: Output stem of every unit's files (unit.jsonl, unit_summary.json...): the source's stem may change
#: between runs when files are added, a unit's folder must not.
UNIT_STEM = "unit"


def open_unit(unit: Unit, vid_stride: int | None = None) -> FrameSource:
    """The source a unit covers: its segment of a video or its folder's images (`vid_stride` None:
    `stream.vid_stride`).

    Raises:
        SourceError: The video cannot be opened.
    """
    if unit.kind == "images":
        return ImageSource([Path(p) for p in unit.images], unit.source)
    return VideoFileSource(unit.source, vid_stride, unit.start_frame, unit.end_frame)


class UnitWorker:
    """Processes units with one pipeline built once.

    Args:
        pipeline_cfg: The `pipeline` config section.
        stream_cfg: The `stream` config section (vid_stride and batch are used).
        threads: torch, ONNX Runtime and OpenCV threads (its share of the CPUs).

    Example:
        >>> worker = UnitWorker(cfg["pipeline"], cfg["stream"], threads=1)  # doctest: +SKIP
        >>> worker.process(plan_units([Path("talk.mp4")])[0])["frames"]  # doctest: +SKIP
        4510
    """

    def __init__(self, pipeline_cfg: dict, stream_cfg: dict, threads: int) -> None:
        self.pipeline = Pipeline.from_config(pipeline_cfg | {"threads": threads})
        self.vid_stride = stream_cfg["vid_stride"]
        # The timeline alone: the driver merges units into each source's JSONL/CSV, summary and chart.
        self.outputs = {"save": False, "save_json": True, "save_csv": False, "show": False, "max_frames": 0}
        self.outputs["batch"] = stream_cfg["batch"]
        self.annotator = FaceAnnotator()
        self._progress: tuple[str | None, int] = (None, 0)

    def ready(self) -> dict:
        """Where this worker runs and the weights it loaded (the driver waits on it before sending units)."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "weights": self.pipeline.weights}

    def progress(self) -> tuple[str | None, int]:
        """(id of the unit being processed or None, its frames done so far)."""
        return self._progress

    def _count(self, frames: int, total: int | None) -> None:
        self._progress = (self._progress[0], frames)

    def process(self, unit: Unit) -> dict:
        """Run one unit.

        Returns:
            {"status": "ok", "frames", "seconds", "fps" (source), "report" (process_source's), "files"
            (name -> bytes)}, or {"status": "failed", "error"} when the unit cannot be read (a corrupt or
            missing video, no readable image): retrying would not help.
        """
        self._progress = (unit.id, 0)
        t0 = time.perf_counter()
        try:
            with (
                tempfile.TemporaryDirectory(prefix="fer-yolo-unit-") as tmp,
                open_unit(unit, self.vid_stride) as source,
            ):
                report = process_source(
                    self.pipeline,
                    source,
                    self.outputs,
                    Path(tmp),
                    UNIT_STEM,
                    self.annotator,
                    on_frame=self._count,
                )
                files = {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}
                fps = source.info.fps
        except FerYoloError as e:
            return {"status": "failed", "error": e.message}
        finally:
            self._progress = (None, 0)
        seconds = round(time.perf_counter() - t0, 3)
        return {
            "status": "ok",
            "frames": report["frames"],
            "seconds": seconds,
            "fps": fps,
            "report": report,
            "files": files,
        }
