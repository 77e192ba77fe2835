"""The live page's feed: one thread runs the pipeline on the configured source, viewers share its output.

A webcam can be opened once, and several browser tabs must not multiply the work: the feed keeps only
the newest annotated JPEG and a rolling window of emotion counts; each viewer streams the newest JPEG
as MJPEG. A file source loops, so a recorded clip can stand in for a camera. The feed runs while someone
watches: it closes the source `idle_s` after the last viewer leaves, and a viewer arriving after it
stopped (idle, or a source that failed) starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator

import cv2

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.emotion.labels import EMOTION_KEY, EMOTIONS
from fer_yolo.errors import FerYoloError
from fer_yolo.pipeline import Pipeline
from fer_yolo.sinks import EmotionSeconds
from fer_yolo.sources import FALLBACK_FPS, FrameSource, open_sources, public_url

LOGGER = logging.getLogger(__name__)


class LiveFeed:
    """Runs the pipeline on `spec` in a daemon thread while viewers are attached (see mjpeg).

    Args:
        pipeline: A pipeline of its own (fork the server's).
        spec: Source spec (webcam index, URL or file).
        annotator: Draws the frames (None: `stream.bars` and `stream.fps_overlay` as default.yaml sets them).
        window_s: Seconds of emotion history kept for the chart.
        idle_s: Seconds the feed keeps running (and the camera open) after its last viewer left.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        spec: str,
        annotator: FaceAnnotator | None = None,
        window_s: float = 60.0,
        idle_s: float = 10.0,
    ) -> None:
        self.pipeline, self.spec, self.window_s, self.idle_s = pipeline, spec, window_s, idle_s
        self.annotator = annotator or FaceAnnotator()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.error: str | None = None
        self.fps: float | None = None
        self._seconds = EmotionSeconds()  # by whole second of time.monotonic()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # set while the feed runs, under _cond
        self._source: FrameSource | None = None  # the source being read
        self._last: threading.Thread | None = None  # the latest thread started: the next one waits for it
        self._viewers, self._idle_since = 0, time.monotonic()

    def _attach(self) -> None:
        """A viewer arrives: (re)start the feed if it is not running."""
        with self._cond:
            self._viewers += 1
            if self._thread is None and not self._stop.is_set():
                self.error = None
                # an idle feed's thread may still be closing the camera: the new one waits until it has
                thread = threading.Thread(target=self._run, args=(self._last,), name="live feed", daemon=True)
                self._thread = self._last = thread
                self._thread.start()

    def _detach(self) -> None:
        with self._cond:
            self._viewers -= 1
            if self._viewers == 0:
                self._idle_since = time.monotonic()

    def _idle(self) -> bool:
        """True (and the feed marked stopped) when nobody has watched for idle_s; run by the feed thread."""
        with self._cond:
            if self._viewers or time.monotonic() - self._idle_since < self.idle_s:
                return False
            self._thread = None  # decided under the lock: a viewer arriving now starts a new thread
            return True

    def _run(self, previous: threading.Thread | None) -> None:
        error = None
        if previous is not None:
            previous.join()  # it has let go of the source (a webcam opens for one reader at a time)
        try:
            while not self._stop.is_set():
                seq_before = self.seq
                for source in open_sources(self.spec, reconnect=True):  # the page says it is reconnecting
                    with source:
                        self._source = source
                        due = time.monotonic()  # when the next frame of a looping file is shown
                        for result in self.pipeline.run(source, annotator=self.annotator):
                            now, self.fps = time.monotonic(), result.fps
                            ok, jpeg = cv2.imencode(".jpg", result.annotated, [cv2.IMWRITE_JPEG_QUALITY, 80])
                            with self._cond:
                                self.jpeg, self.seq = jpeg.tobytes() if ok else self.jpeg, self.seq + 1
                                self._seconds.add(now, result.faces.data.get(EMOTION_KEY, []))
                                self._seconds.drop_before(int(now - self.window_s))
                                self._cond.notify_all()
                            if self._stop.is_set() or self._idle():
                                return
                            if not source.info.live:  # a looping file plays at its own frame rate
                                due += 1 / (source.info.fps or FALLBACK_FPS)  # processing time included
                                time.sleep(max(0.0, due - time.monotonic()))
                                due = max(due, time.monotonic())  # behind (slow pipeline): no burst after
                if self.seq == seq_before:  # the source gave no frame at all: do not spin
                    raise FerYoloError(f"{public_url(self.spec)} gave no frames", "check the live source")
        except FerYoloError as e:
            error = f"{e.message}" + (f" ({e.hint})" if e.hint else "")
            LOGGER.error("live feed stopped: %s", error)
        except Exception as e:  # whatever stops the feed is shown on the page, never a silent stall
            error = f"unexpected {type(e).__name__}: {e}"
            LOGGER.exception("live feed stopped")
        finally:
            with self._cond:  # the error and the end of the thread at once: the next viewer starts anew
                self._source = None
                if self._thread is threading.current_thread():  # else _idle() has already ended it
                    self._thread, self.error = None, error
                self._cond.notify_all()

    async def mjpeg(self, boundary: str = "frame") -> AsyncIterator[bytes]:
        """multipart/x-mixed-replace parts, one per new annotated frame, until the feed stops.

        Asynchronous, so a viewer waiting for frames (or gone) holds no worker thread. Each viewer keeps the
        feed running; the first (re)starts it.
        """
        self._attach()
        try:
            seen = self.seq  # only frames made from now on
            while not self._stop.is_set() and self.error is None:
                if self.seq == seen:
                    await asyncio.sleep(0.01)
                    continue
                with self._cond:
                    seen, jpeg = self.seq, self.jpeg
                yield b"--" + boundary.encode() + b"\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
        finally:
            self._detach()

    def stats(self) -> dict:
        """Faces per emotion in each of the last seconds (for the rolling chart), and the feed's state."""
        now = int(time.monotonic())
        with self._cond:
            buckets = {now - s: counts.copy() for s, counts in self._seconds.buckets.items()}
            running = self._thread is not None and self.error is None
        seconds = sorted(buckets, reverse=True)
        return {
            "running": running,
            "error": self.error,
            "fps": round(self.fps, 1) if self.fps else None,
            # a network stream that dropped: its reconnection attempt (0: streaming), so that the page says
            # why its picture stands still
            "reconnecting": getattr(self._source, "lost", 0) if running else 0,
            "seconds_ago": seconds,
            "counts": {e: [buckets[s][e] for s in seconds] for e in EMOTIONS},
        }

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            thread = self._thread
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout=5)
