"""Face tracking: ByteTrack (roboflow `trackers`) giving each face a `tracker_id` across frames."""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from fer_yolo.config import pipeline_default


class FaceTracker:
    """Associates face detections over time.

    Detections at or above `conf` start or extend tracks; weaker ones (the detector runs with a lower
    threshold) only extend existing tracks, so a face that blurs or turns for a moment keeps its id.
    A face seen for the first time is returned with tracker_id -1 (ByteTrack confirms a track on its
    second frame), weak detections on no track are dropped.

    Args:
        conf: Confidence that starts a track (and separates ByteTrack's two matching stages).
        track_buffer_s: Seconds a lost face keeps its id before the id is retired.
        min_iou: Least IoU between a track's predicted box and a detection to match them.
        conf and track_buffer_s left out (None) take the `pipeline` section's defaults.

    Example:
        >>> tracker = FaceTracker()  # doctest: +SKIP
        >>> faces = tracker.update(detector.detect(frame), t_s=0.0)  # doctest: +SKIP
    """

    def __init__(
        self, conf: float | None = None, track_buffer_s: float | None = None, min_iou: float = 0.2
    ) -> None:
        self.conf, self.min_iou = pipeline_default(conf, "conf"), min_iou
        self.track_buffer_s = pipeline_default(track_buffer_s, "track_buffer_s")
        self.reset()

    def reset(self) -> None:
        """Forget every track (call between videos)."""
        self._tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(self.track_buffer_s * 30)),  # counted in 30-fps frames
            track_activation_threshold=self.conf,
            high_conf_det_threshold=self.conf,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=self.min_iou,
        )

    def update(self, faces: sv.Detections, t_s: float) -> sv.Detections:
        """Assign tracker ids; returns tracked faces (id order) and new faces (id -1).

        Args:
            faces: This frame's detections (confidence set).
            t_s: Frame time in seconds (media time or wall clock): the motion model uses real time, so
                dropped frames on live sources do not break tracks.
        """
        tracked = self._tracker.update(faces, timestamp=t_s)
        if tracked.tracker_id is None or len(tracked) == 0:
            out = faces[np.zeros(len(faces), bool)]
            out.tracker_id = np.zeros(0, int)
            return out
        tracked = tracked[(tracked.tracker_id >= 0) | (tracked.confidence >= self.conf)]
        return tracked[np.argsort(tracked.tracker_id, kind="stable")]  # id order reads well in timelines
