"""The one pipeline behind stream, predict, serve and the benchmarks.

frame -> face detector -> tracker (video) -> emotion head (one batch per frame) -> per-track smoothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from fer_yolo.detectors import FaceDetector, build_detector
from fer_yolo.emotion.classifier import EmotionClassifier
from fer_yolo.emotion.labels import EMOTION_KEY, EMOTION_PROBS_KEY, EMOTIONS
from fer_yolo.smoothing import EmaSmoother
from fer_yolo.sources import Frame, FrameSource
from fer_yolo.tracking import FaceTracker


@dataclass
class FrameResult:
    """What the pipeline found in one frame.

    Attributes:
        frame: The input frame.
        faces: Face boxes (frame pixels) with `confidence`, `tracker_id` (-1: new face; None: no
            tracking), `data["emotion_probs"]` float32 (n, 7) and `data["emotion"]` (n,) names.
        latency_ms: Milliseconds per stage (detect, track, classify, total).
    """

    frame: Frame
    faces: sv.Detections
    latency_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    """Faces and their emotions, frame after frame.

    Args:
        detector: Any FaceDetector, run with a threshold at or below `conf`.
        classifier: The emotion head.
        conf: Confidence at which a face is reported (and starts a track).
        tracker: Tracks faces across video frames (None: every frame on its own).
        smoother: Per-track smoothing of probabilities (needs `tracker`).

    Example:
        >>> pipeline = Pipeline.from_config(load_config()["pipeline"])
        >>> with next(open_sources("video.mp4")) as source:
        ...     for result in pipeline.run(source):
        ...         print(result.frame.index, result.faces.data["emotion"])
    """

    def __init__(
        self,
        detector: FaceDetector,
        classifier: EmotionClassifier,
        conf: float = 0.4,
        tracker: FaceTracker | None = None,
        smoother: EmaSmoother | None = None,
    ) -> None:
        self.detector, self.classifier, self.conf = detector, classifier, conf
        self.tracker, self.smoother = tracker, smoother

    @classmethod
    def from_config(cls, cfg: dict) -> Pipeline:
        """Build from the `pipeline` config section (keys and meaning: fer_yolo/cfg/default.yaml)."""
        if cfg["detector"] == "yolo":
            detector = build_detector(
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
        else:
            detector = build_detector(cfg["detector"], device=cfg["device"])
        classifier = EmotionClassifier(
            cfg["emotion_weights"] or None,
            device=cfg["device"],
            half=cfg["half"],
            margin=cfg["margin"],
            backend=cfg["backend"],
        )
        tracker = FaceTracker(cfg["conf"], cfg["track_buffer_s"]) if cfg["track"] else None
        smoother = EmaSmoother(cfg["smoothing_s"]) if cfg["track"] and cfg["smoothing_s"] > 0 else None
        return cls(detector, classifier, cfg["conf"], tracker, smoother)

    def fork(self) -> Pipeline:
        """A pipeline sharing this one's models but with its own tracking state (one per concurrent video)."""
        tracker = (
            FaceTracker(self.tracker.conf, self.tracker.track_buffer_s, self.tracker.min_iou)
            if self.tracker
            else None
        )
        smoother = EmaSmoother(self.smoother.tau_s, self.smoother.max_age_s) if self.smoother else None
        return Pipeline(self.detector, self.classifier, self.conf, tracker, smoother)

    def reset(self) -> None:
        """Forget tracks and smoothing state (a new video starts)."""
        for stage in (self.tracker, self.smoother):
            if stage is not None:
                stage.reset()

    def process(self, image: np.ndarray, t_s: float = 0.0, track: bool = False) -> tuple[sv.Detections, dict]:
        """Faces and emotions of one BGR uint8 frame.

        Args:
            image: The frame.
            t_s: Its time in seconds (tracking and smoothing use it).
            track: Associate with earlier frames (video); False treats the frame on its own.

        Returns:
            (faces as in FrameResult.faces, latency_ms per stage).
        """
        t0 = time.perf_counter()
        faces = self.detector.detect(image)
        t1 = time.perf_counter()
        if track and self.tracker is not None:
            faces = self.tracker.update(faces, t_s)
        else:
            faces = faces[faces.confidence >= self.conf]
        t2 = time.perf_counter()
        probs = self.classifier.classify(image, faces)
        if track and self.smoother is not None and faces.tracker_id is not None:
            probs = self.smoother.smooth(faces.tracker_id, probs, t_s)
        faces.data[EMOTION_PROBS_KEY] = probs.astype(np.float32)
        faces.data[EMOTION_KEY] = np.array([EMOTIONS[i] for i in probs.argmax(1)], dtype=object)
        t3 = time.perf_counter()
        ms = {"detect": t1 - t0, "track": t2 - t1, "classify": t3 - t2, "total": t3 - t0}
        return faces, {k: round(v * 1000, 2) for k, v in ms.items()}

    def run(self, source: FrameSource) -> Iterator[FrameResult]:
        """Process every frame a source yields (tracks restart with each source)."""
        self.reset()
        track = source.info.fps is not None  # videos and live sources; image sets are independent
        for frame in source:
            faces, latency = self.process(frame.image, frame.t_s, track)
            yield FrameResult(frame, faces, latency)
