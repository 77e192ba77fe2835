"""Background video jobs: each upload is processed by the shared pipeline's models in its own folder.

Jobs run one at a time in a worker thread (the CPU is the bottleneck); each has a private temporary
folder, named by a random id that the client only ever uses as a dictionary key, and deleted when the
job expires or the server stops.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.errors import SourceError
from fer_yolo.pipeline import Pipeline
from fer_yolo.runner import process_source
from fer_yolo.sources import VideoFileSource

LOGGER = logging.getLogger(__name__)

#: Files a finished job offers, by the name used in its URL.
JOB_FILES = {
    "video.webm": "video.webm",
    "timeline.csv": "video.csv",
    "timeline.jsonl": "video.jsonl",
    "emotions.png": "video_emotions.png",
    "summary.json": "video_summary.json",
}


@dataclass
class VideoJob:
    id: str
    folder: Path
    status: str = "queued"  # queued | running | done | error
    frames: int = 0
    total: int | None = None
    error: str | None = None
    report: dict = field(default_factory=dict)
    finished_at: float | None = None

    def to_dict(self) -> dict:
        out = {
            "id": self.id,
            "status": self.status,
            "frames": self.frames,
            "total": self.total,
            "progress": round(self.frames / self.total, 4) if self.total else None,
        }
        if self.error:
            out["error"] = self.error
        if self.status == "done":
            out["files"] = {
                name: f"/api/videos/{self.id}/{name}"
                for name, f in JOB_FILES.items()
                if (self.folder / f).is_file()
            }
            out["fps"] = self.report.get("fps")
            if (
                "incomplete" in self.report
            ):  # the upload ends short of its header's frame count, as in the CLI
                out["incomplete"] = self.report["incomplete"]
        return out


class VideoJobs:
    """Queue of video jobs processed by one worker thread.

    Args:
        pipeline: The server's pipeline; each job runs on a fork (own tracks, shared models).
        stream_cfg: The `stream` config section (what each job writes).
        ttl_s: Seconds a finished job (and its files) is kept.
        max_jobs: Jobs uploading, queued or running at once; more are refused. Finished jobs beyond
            this many are deleted, oldest first.
        max_frames: Frames processed per video at most (headers can lie about the length).
    """

    def __init__(
        self, pipeline: Pipeline, stream_cfg: dict, ttl_s: float, max_jobs: int, max_frames: int
    ) -> None:
        self.pipeline, self.ttl_s, self.max_jobs = pipeline, ttl_s, max_jobs
        self.cfg = {
            **stream_cfg,
            "save": True,
            "save_json": True,
            "save_csv": True,
            "show": False,
            "max_frames": max_frames,
        }
        self.root = Path(tempfile.mkdtemp(prefix="fer-yolo-jobs-"))
        self.jobs: dict[str, VideoJob] = {}
        self._reserved: set[str] = set()  # ids whose upload is still arriving
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="video-job")

    def busy(self) -> int:
        """Jobs queued or running (not those whose upload is still arriving)."""
        with self._lock:
            return self._busy()

    def _busy(self) -> int:
        return sum(j.status in ("queued", "running") for j in self.jobs.values())

    def reserve(self) -> tuple[str, Path] | None:
        """A job id and its private folder for an upload, or None when max_jobs are already active."""
        self.expire()
        with self._lock:
            if len(self._reserved) + self._busy() >= self.max_jobs:
                return None
            job_id = uuid.uuid4().hex
            self._reserved.add(job_id)
        folder = self.root / job_id
        folder.mkdir()
        return job_id, folder

    def release(self, job_id: str) -> None:
        """Give back a reservation whose upload was refused, deleting what it wrote."""
        with self._lock:
            self._reserved.discard(job_id)
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def submit(self, job_id: str, folder: Path, upload: Path, total: int, name: str) -> VideoJob:
        """Queue a reserved job: `upload` is the stored video, `name` what its outputs call it."""
        job = VideoJob(job_id, folder, total=total if total > 0 else None)
        with self._lock:
            self._reserved.discard(job_id)
            self.jobs[job_id] = job
        self._pool.submit(self._run, job, upload, name)
        return job

    def get(self, job_id: str) -> VideoJob | None:
        self.expire()
        with self._lock:
            return self.jobs.get(job_id)

    def _run(self, job: VideoJob, upload: Path, name: str) -> None:
        job.status = "running"

        def progress(n: int, total: int | None) -> None:
            job.frames = n
            if self._closing.is_set():
                raise _Cancelled

        try:
            # every frame (the page plays it all), named as the client named it, not by where it is stored
            with VideoFileSource(upload, vid_stride=1, name=name) as source:
                job.report = process_source(
                    self.pipeline.fork(),
                    source,
                    self.cfg,
                    job.folder,
                    "video",
                    FaceAnnotator.from_config(self.cfg),
                    video_suffix=".webm",
                    on_frame=progress,
                )
            job.status = "done"
        except _Cancelled:
            job.status, job.error = "error", "the server stopped"
        except SourceError as e:  # the upload does not open, or holds no decodable frame
            job.status, job.error = "error", f"cannot read the video: {e.message}"
        except Exception as e:  # reported to the user; the server keeps running
            LOGGER.exception("video job %s failed", job.id)
            # the type only: a message may name the server's own paths; the log has the whole traceback
            job.status = "error"
            job.error = f"processing failed ({type(e).__name__}); the server log says why"
        finally:
            upload.unlink(missing_ok=True)
            job.finished_at = time.monotonic()

    def expire(self) -> None:
        """Delete finished jobs older than the TTL, and the oldest beyond max_jobs, with their files."""
        now = time.monotonic()
        with self._lock:
            finished = sorted((j for j in self.jobs.values() if j.finished_at), key=lambda j: j.finished_at)
            old = [j for j in finished if now - j.finished_at > self.ttl_s]
            old += [j for j in finished if j not in old][: max(0, len(finished) - len(old) - self.max_jobs)]
            for job in old:
                del self.jobs[job.id]
        for job in old:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self) -> None:
        """Stop the running job at its next frame, then delete every job's files."""
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)


class _Cancelled(Exception):
    """Raised in a job's frame callback when the server stops."""
