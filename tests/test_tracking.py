"""Face tracking and per-track smoothing on hand-made detections with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from fer_yolo.smoothing import EmaSmoother
from fer_yolo.tracking import FaceTracker


def faces(*boxes_conf: tuple[float, float, float, float, float]) -> sv.Detections:
    a = np.array(boxes_conf, np.float32).reshape(-1, 5)
    return sv.Detections(xyxy=a[:, :4], confidence=a[:, 4], class_id=np.zeros(len(a), int))


def test_faces_keep_their_ids_while_moving_and_weak_detections_only_extend_tracks():
    tracker = FaceTracker(conf=0.5)
    first = tracker.update(faces((0, 0, 50, 50, 0.9), (200, 0, 250, 50, 0.9), (400, 400, 420, 420, 0.2)), 0.0)
    assert first.tracker_id.tolist() == [-1, -1]  # new faces are reported; the weak one on no track is not
    ids = None
    for step in range(1, 6):
        dx = 3 * step
        out = tracker.update(faces((dx, 0, 50 + dx, 50, 0.9), (200 - dx, 0, 250 - dx, 50, 0.9)), step / 30)
        assert len(out) == 2 and (out.tracker_id >= 0).all()
        pairs = {int(t): float(x) for t, x in zip(out.tracker_id, out.xyxy[:, 0])}
        ids = ids or {t: x < 100 for t, x in pairs.items()}
        assert {t: x < 100 for t, x in pairs.items()} == ids  # same id stays on the same face
    left = next(t for t, is_left in ids.items() if is_left)
    weak = tracker.update(faces((18, 0, 68, 50, 0.2)), 6 / 30)  # blurred face: low confidence, same place
    assert weak.tracker_id.tolist() == [left]
    tracker.reset()
    assert tracker.update(faces((0, 0, 50, 50, 0.9)), 0.0).tracker_id.tolist() == [-1]


def test_ema_smoother_weights_by_elapsed_time_and_forgets_old_tracks():
    smoother = EmaSmoother(tau_s=1.0, max_age_s=2.0)
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert smoother.smooth(np.array([7]), a, 0.0).tolist() == a.tolist()
    w = np.exp(-0.5)
    assert smoother.smooth(np.array([7]), b, 0.5)[0] == pytest.approx([w, 1 - w])
    assert smoother.smooth(np.array([-1]), b, 0.6).tolist() == b.tolist()  # untracked faces pass through
    smoother.smooth(np.array([8]), a, 3.0)  # track 7 unseen for 2.5 s: forgotten
    assert smoother.smooth(np.array([7]), b, 3.1).tolist() == b.tolist()
    assert EmaSmoother(tau_s=0).smooth(np.array([1]), b, 0.0).tolist() == b.tolist()
