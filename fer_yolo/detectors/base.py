"""The face-detector interface: every detector turns BGR frames into supervision.Detections."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import supervision as sv

from fer_yolo.errors import WeightsError

#: sv.Detections.data key of the (n, 5, 2) float32 landmarks (eyes, nose, mouth corners), if any.
LANDMARKS_KEY = "landmarks"


class FaceDetector(ABC):
    """Finds faces in BGR uint8 (H, W, 3) images.

    Results are `sv.Detections` in image pixels: `xyxy` float32 (n, 4), `confidence` float32 (n,)
    always set, `class_id` zeros (n,). Detectors that predict landmarks put them in
    `data[LANDMARKS_KEY]`. Settings go to the constructor, images to the call.
    """

    #: The weights file (or folder) the detector runs, as run reports record it.
    weights: str = ""

    @abstractmethod
    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        """Detect faces in several images at once (batched where the model allows)."""

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Detect faces in one BGR uint8 (H, W, 3) image."""
        return self.detect_batch([image])[0]


def make_detections(
    xyxy: np.ndarray, confidence: np.ndarray, landmarks: np.ndarray | None = None
) -> sv.Detections:
    """Build face Detections with the fields every detector sets (class_id 0 = face)."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    data = {} if landmarks is None else {LANDMARKS_KEY: np.asarray(landmarks, np.float32).reshape(-1, 5, 2)}
    return sv.Detections(
        xyxy=xyxy,
        confidence=np.asarray(confidence, np.float32).reshape(-1),
        class_id=np.zeros(len(xyxy), int),
        data=data,
    )


def user_weights_file(weights: str | Path | None, detector: str, hint: str) -> Path:
    """The weights file a user supplies for a detector fer-yolo does not ship, checked to be a file.

    Args:
        weights: The path given (None or "": not given).
        detector: The detector's name, for the message.
        hint: What to pass (which file, where it comes from).

    Raises:
        WeightsError: No path given, or no file there.

    Example:
        >>> user_weights_file(None, "yunet", "pass a YuNet .onnx")
        Traceback (most recent call last):
        ...
        fer_yolo.errors.WeightsError: detector 'yunet' needs a weights file, and none was given
          hint: pass a YuNet .onnx
    """
    if not weights:
        raise WeightsError(f"detector {detector!r} needs a weights file, and none was given", hint)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"{detector} weights not found: {path}", hint)
    return path
