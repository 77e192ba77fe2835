"""The one pipeline behind stream, predict, serve, batch and the benchmarks.

source -> face detector -> tracker (video) -> emotion head (one batch per frame) -> per-track smoothing
-> annotation (optional): `Pipeline.run` yields a FrameResult per frame, which sinks (runner, web, batch)
only write out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.config import default_of, defaults, load_config, pipeline_default
from fer_yolo.data.images import as_bgr
from fer_yolo.detectors import USER_WEIGHTS, FaceDetector, build_detector
from fer_yolo.emotion.classifier import EmotionClassifier
from fer_yolo.emotion.labels import EMOTION_KEY, EMOTION_PROBS_KEY, EMOTIONS
from fer_yolo.faces import FaceRecord, face_records
from fer_yolo.smoothing import EmaSmoother
from fer_yolo.sources import Frame, FrameSource, open_sources
from fer_yolo.tracking import FaceTracker
from fer_yolo.utils.device import set_threads

LOGGER = logging.getLogger(__name__)
#: `pipeline` settings of the YOLO detector, which MTCNN does not read.
YOLO_ONLY = ("detector_weights", "imgsz", "iou", "low_conf")
#: Of those, the ones the detectors on user-supplied weights (yunet, scrfd) do not read either.
PEERS_IGNORE = ("imgsz",)


def _detector_from_config(cfg: dict) -> FaceDetector:
    """The detector of a `pipeline` config section, warning about the settings it does not read."""
    name = cfg["detector"]
    if name == "yolo":
        return build_detector(
            "yolo",
            weights=cfg["detector_weights"] or None,
            imgsz=cfg["imgsz"],
            conf=min(cfg["low_conf"], cfg["conf"]),
            iou=cfg["iou"],
            max_det=cfg["max_faces"],
            device=cfg["device"],
            half=cfg["half"],
            backend=cfg["backend"],
        )
    peer = name in USER_WEIGHTS  # yunet, scrfd: on the weights the user supplies, run on the CPU
    default = defaults()["pipeline"]
    ignored = [f"{k}={cfg[k]!r}" for k in (PEERS_IGNORE if peer else YOLO_ONLY) if cfg[k] != default[k]]
    if ignored:
        LOGGER.warning("ignored with detector %s (YOLO only): %s", name, ", ".join(ignored))
    if not peer:
        return build_detector(name, device=cfg["device"])
    return build_detector(
        name,
        weights=cfg["detector_weights"] or None,
        conf=min(cfg["low_conf"], cfg["conf"]),
        iou=cfg["iou"],
        max_det=cfg["max_faces"],
    )


class FrameRate:
    """Frames per second over recent frames (exponential average of frame intervals), one tick() a frame."""

    def __init__(self) -> None:
        self.last, self.interval = None, None

    def tick(self) -> float | None:
        now = time.perf_counter()
        if self.last is not None:
            dt = now - self.last
            self.interval = dt if self.interval is None else 0.9 * self.interval + 0.1 * dt
        self.last = now
        return 1 / self.interval if self.interval else None


@dataclass
class FrameResult:
    """What the pipeline found in one frame.

    Attributes:
        frame: The input frame.
        faces: Face boxes (frame pixels) with `confidence`, `tracker_id` (-1: new face; None: no
            tracking), `data["emotion_probs"]` float32 (n, 7) and `data["emotion"]` (n,) names.
        latency_ms: Milliseconds per stage (detect, track, classify, annotate when drawn, total).
        fps: Frames the pipeline delivers per second, over recent frames (None for the first).
        annotated: The frame with its faces drawn, when `run` was given an annotator.
    """

    frame: Frame
    faces: sv.Detections
    latency_ms: dict[str, float] = field(default_factory=dict)
    fps: float | None = None
    annotated: np.ndarray | None = None

    def records(self) -> list[FaceRecord]:
        """The faces as outputs write them (timeline rows, web API, summaries)."""
        return face_records(self.frame.index, self.frame.t_s, self.faces)


class Pipeline:
    """Faces and their emotions, frame after frame.

    Args:
        detector: Any FaceDetector, run with a threshold at or below `conf`.
        classifier: The emotion head.
        conf: Confidence at which a face is reported (and starts a track).
        tracker: Tracks faces across video frames (None: every frame on its own).
        smoother: Per-track smoothing of probabilities (needs `tracker`).
        max_faces: Most faces per frame, the most confident.
        classify_every: Video: run the emotion head on each tracked face every n-th frame (staggered across
            faces by track id), its last probabilities standing in between; new faces are classified at
            once. Emotions change slower than frames: 2 halves the head's work and every face of every
            frame still has an emotion. 1: every face, every frame.
        conf, max_faces and classify_every left out (None) take the `pipeline` section's defaults.

    Example:
        >>> pipeline = Pipeline.from_config()  # doctest: +SKIP
        >>> for result in pipeline.run("video.mp4"):  # doctest: +SKIP
        ...     print(result.frame.index, result.faces.data["emotion"])
    """

    def __init__(
        self,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        conf: float | None = None,
        tracker: FaceTracker | None = None,
        smoother: EmaSmoother | None = None,
        max_faces: int | None = None,
        classify_every: int | None = None,
    ) -> None:
        self.detector, self.classifier, self.conf = detector, classifier, pipeline_default(conf, "conf")
        self.tracker, self.smoother = tracker, smoother
        self.max_faces = pipeline_default(max_faces, "max_faces")
        self.classify_every = pipeline_default(classify_every, "classify_every")
        self._last: dict[int, np.ndarray] = {}  # each visible track's latest head output
        self._frame = 0

    @property
    def weights(self) -> dict[str, str]:
        """The files the two networks run, by role (the emotion head on the CPU: its int8 export)."""
        return {"detector": self.detector.weights, "emotion": self.classifier.weights}

    @classmethod
    def from_config(cls, cfg: dict | None = None) -> Pipeline:
        """Build from a `pipeline` config section (keys and meaning: fer_yolo/cfg/default.yaml) or a whole
        config; keys left out (or None) take their defaults, and every value is checked as `--set` checks it.

        Raises:
            ConfigError: An unknown key, a value of the wrong type or out of range, an unknown detector.

        Example:
            >>> pipeline = Pipeline.from_config({"conf": 0.5})  # doctest: +SKIP
        """
        cfg = cfg or {}
        section = cfg["pipeline"] if isinstance(cfg.get("pipeline"), dict) else cfg
        cfg = load_config(overrides={"pipeline": section})["pipeline"]
        set_threads(cfg["threads"] or None)  # before the ONNX Runtime sessions, which take torch's count
        classifier = EmotionClassifier(
            cfg["emotion_weights"] or None,
            device=cfg["device"],
            half=cfg["half"],
            margin=cfg["margin"],
            backend=cfg["backend"],
            tta=cfg["tta"],
        )
        tracker = FaceTracker(cfg["conf"], cfg["track_buffer_s"]) if cfg["track"] else None
        smoother = EmaSmoother(cfg["smoothing_s"]) if cfg["track"] and cfg["smoothing_s"] > 0 else None
        return cls(
            _detector_from_config(cfg),
            classifier,
            cfg["conf"],
            tracker,
            smoother,
            cfg["max_faces"],
            cfg["classify_every"],
        )

    def fork(self) -> Pipeline:
        """A pipeline sharing this one's models but with its own tracking state (one per concurrent video)."""
        tracker = (
            FaceTracker(self.tracker.conf, self.tracker.track_buffer_s, self.tracker.min_iou)
            if self.tracker
            else None
        )
        smoother = EmaSmoother(self.smoother.tau_s, self.smoother.max_age_s) if self.smoother else None
        return Pipeline(
            self.detector, self.classifier, self.conf, tracker, smoother, self.max_faces, self.classify_every
        )

    def reset(self) -> None:
        """Forget tracks and smoothing state (a new video starts)."""
        for stage in (self.tracker, self.smoother):
            if stage is not None:
                stage.reset()
        self._last, self._frame = {}, 0

    def _due(self, faces: sv.Detections, tracked: bool, known: set[int]) -> np.ndarray:
        """Which faces of a frame the head reads now (see classify_every): tracks not in `known` (the tracks
        of the frame before, which have an output) and the others on their turn; counts the frame."""
        due = np.ones(len(faces), bool)
        if tracked and self.classify_every > 1:
            for i, tid in enumerate(faces.tracker_id.tolist()):
                due[i] = tid < 0 or tid not in known or (self._frame + tid) % self.classify_every == 0
        self._frame += 1
        return due

    def _classify(self, images: list[np.ndarray], faces_list: list[sv.Detections], track: bool) -> list:
        """Head probabilities (n, 7) per frame: fresh for the faces due, the track's last for the others."""
        tracked = [track and f.tracker_id is not None for f in faces_list]
        due, known = [], set(self._last)
        # as frame by frame: the earlier frames of a batch count
        for faces, is_tracked in zip(faces_list, tracked):
            due.append(self._due(faces, is_tracked, known))
            if is_tracked:
                known = {tid for tid in faces.tracker_id.tolist() if tid >= 0}
        fresh = self.classifier.classify_frames(images, [f[d] for f, d in zip(faces_list, due)])
        out, start = [], 0
        for faces, mask, is_tracked in zip(faces_list, due, tracked):
            probs = np.empty((len(faces), len(EMOTIONS)), np.float32)
            probs[mask] = fresh[start : start + mask.sum()]
            start += mask.sum()
            if is_tracked:
                ids = faces.tracker_id.tolist()
                for i in np.flatnonzero(~mask):
                    probs[i] = self._last[ids[i]]
                self._last = {tid: probs[i] for i, tid in enumerate(ids) if tid >= 0}  # visible tracks only
            out.append(probs)
        return out

    def _most_confident(self, faces: sv.Detections) -> sv.Detections:
        """At most max_faces faces, the most confident (any detector: MTCNN has no limit of its own)."""
        if len(faces) <= self.max_faces:
            return faces
        return faces[np.argsort(-faces.confidence, kind="stable")[: self.max_faces]]

    def process(self, image: np.ndarray, t_s: float = 0.0, track: bool = False) -> tuple[sv.Detections, dict]:
        """Faces and emotions of one BGR uint8 frame.

        Args:
            image: The frame (grey and BGRA frames are converted).
            t_s: Its time in seconds (tracking and smoothing use it).
            track: Associate with earlier frames (video); False treats the frame on its own.

        Returns:
            (faces as in FrameResult.faces, latency_ms per stage).
        """
        return self.process_batch([image], [t_s], track)[0]

    def process_batch(
        self, images: list[np.ndarray], times_s: list[float], track: bool = False
    ) -> list[tuple[sv.Detections, dict]]:
        """`process` for consecutive frames: one detector batch and one emotion batch for all of them.

        Tracking and smoothing still go frame by frame, in order. Latencies are the batch's per frame.
        Grey and BGRA frames are converted to BGR.

        Raises:
            ValueError: A frame that is None, not 8-bit, or not an image (`as_bgr`).
        """
        return self._process_bgr([as_bgr(image) for image in images], times_s, track)

    def _process_bgr(
        self, images: list[np.ndarray], times_s: list[float], track: bool
    ) -> list[tuple[sv.Detections, dict]]:
        """`process_batch` for frames already converted to BGR."""
        t0 = time.perf_counter()
        detected = [self._most_confident(faces) for faces in self.detector.detect_batch(images)]
        t1 = time.perf_counter()
        faces_list = []
        for faces, t_s in zip(detected, times_s):
            if track and self.tracker is not None:
                faces_list.append(self.tracker.update(faces, t_s))
            else:
                faces_list.append(faces[faces.confidence >= self.conf])
        t2 = time.perf_counter()
        for faces, probs, t_s in zip(faces_list, self._classify(images, faces_list, track), times_s):
            if track and self.smoother is not None and faces.tracker_id is not None:
                probs = self.smoother.smooth(faces.tracker_id, probs, t_s)
            faces.data[EMOTION_PROBS_KEY] = probs.astype(np.float32)
            faces.data[EMOTION_KEY] = np.array([EMOTIONS[i] for i in probs.argmax(1)], dtype=object)
        t3 = time.perf_counter()
        n = len(images)
        ms = {"detect": t1 - t0, "track": t2 - t1, "classify": t3 - t2, "total": t3 - t0}
        latency = {k: round(v * 1000 / n, 2) for k, v in ms.items()}
        return [(faces, dict(latency)) for faces in faces_list]

    def run(
        self,
        source: FrameSource | str | int | os.PathLike | list | tuple,
        batch: int | None = None,
        annotator: FaceAnnotator | None = None,
    ) -> Iterator[FrameResult]:
        """Process every frame a source yields (tracks restart with each source).

        Args:
            source: An opened source (a FrameSource, or any object with its `info` and frames), or what
                `open_sources` takes (a video, image, folder, glob, URL, webcam index, or a list or tuple of
                them): each source it names is then opened, run and closed in turn.
            batch: Frames per detector/emotion batch for files (GPUs gain from 8-32; None: `stream.batch`);
                live sources always go frame by frame, so no frame waits for the next.
            annotator: Draw each frame's faces (and its fps, if the annotator shows it) into
                FrameResult.annotated.
        """
        if isinstance(source, (str, int, os.PathLike, list, tuple)):  # names sources (any other: opened)
            for opened in open_sources(source):
                with opened:
                    yield from self.run(opened, batch, annotator)
            return
        self.reset()
        track = source.info.fps is not None  # videos and live sources; image sets are independent
        size = 1 if source.info.live else max(1, default_of(batch, "stream.batch"))
        rate, pending = FrameRate(), []
        for frame in source:
            pending.append(frame)
            if len(pending) < size:
                continue
            yield from self._flush(pending, track, rate, annotator)
            pending = []
        yield from self._flush(pending, track, rate, annotator)

    def _flush(
        self, frames: list[Frame], track: bool, rate: FrameRate, annotator: FaceAnnotator | None
    ) -> Iterator[FrameResult]:
        if not frames:
            return
        images = [as_bgr(f.image) for f in frames]  # a grey frame is annotated in colour
        results = self._process_bgr(images, [f.t_s for f in frames], track)
        for frame, image, (faces, latency) in zip(frames, images, results):
            result = FrameResult(frame, faces, latency, rate.tick())
            if annotator is not None:
                t0 = time.perf_counter()
                result.annotated = annotator.annotate(image, faces, result.fps)
                ms = round((time.perf_counter() - t0) * 1000, 2)
                latency["annotate"], latency["total"] = ms, round(latency["total"] + ms, 2)
            yield result
