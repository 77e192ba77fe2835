"""The face-detector interface: every detector turns BGR frames into supervision.Detections."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import supervision as sv

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
