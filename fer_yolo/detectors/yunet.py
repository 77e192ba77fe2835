"""YuNet face detector (OpenCV's `cv2.FaceDetectorYN`) on a weights file the user supplies.

YuNet is a peer for comparison and an optional backend: fer-yolo neither ships nor downloads its weights
(e.g. `face_detection_yunet_2023mar.onnx` of opencv/opencv_zoo, MIT). OpenCV runs the network, decodes
its outputs and applies NMS; the network runs at each image's own size (`setInputSize` per image).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from fer_yolo.detectors.base import FaceDetector, make_detections, user_weights_file
from fer_yolo.errors import ConfigError, WeightsError

_HINT = (
    "pass a YuNet .onnx file (e.g. face_detection_yunet_2023mar.onnx from opencv/opencv_zoo, MIT): "
    "--weights PATH, pipeline.detector_weights, or `eval detector --compare yunet=PATH`; "
    "fer-yolo neither ships nor downloads it"
)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs errors only while a net loads (OpenCV 5 warns that its new engine ignores targets)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class YunetDetector(FaceDetector):
    """Faces and 5 landmarks from YuNet weights, through OpenCV's FaceDetectorYN.

    Args:
        weights: The YuNet .onnx file (required: no default is shipped).
        conf: Minimum face score kept (FaceDetectorYN's score_threshold).
        iou: NMS IoU threshold.
        max_det: Most faces per image (FaceDetectorYN's top_k).

    Raises:
        WeightsError: No weights given, no file there, or OpenCV cannot run it as YuNet.
        ConfigError: Settings out of range.

    Example:
        >>> detector = YunetDetector("face_detection_yunet_2023mar.onnx")  # doctest: +SKIP
        >>> faces = detector.detect(cv2.imread("group.jpg"))  # doctest: +SKIP
        >>> faces.xyxy, faces.confidence, faces.data["landmarks"]  # doctest: +SKIP
    """

    def __init__(
        self, weights: str | Path | None = None, conf: float = 0.5, iou: float = 0.4, max_det: int = 5000
    ) -> None:
        if not (0 <= conf <= 1 and 0 <= iou <= 1 and max_det >= 1):
            raise ConfigError(
                f"bad YuNet settings: conf={conf}, iou={iou}, max_det={max_det}",
                "0 <= conf <= 1, 0 <= iou <= 1, max_det >= 1",
            )
        path = user_weights_file(weights, "yunet", _HINT)
        self.weights = str(path)
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        try:
            with _quiet_opencv():
                settings = (self.conf, self.iou, self.max_det)
                self._net = cv2.FaceDetectorYN.create(str(path), "", (64, 64), *settings)
                self._net.detect(np.zeros((64, 64, 3), np.uint8))  # a file of another model fails here
        except cv2.error as e:
            message = str(e).strip().splitlines()[-1][:200]
            raise WeightsError(f"cannot run {path} as YuNet: {message}", _HINT) from e
        # setInputSize + detect change the detector's state: calls from several threads must not interleave.
        self._lock = threading.Lock()

    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        """Detect faces and landmarks in BGR uint8 (H, W, 3) images, one at a time at its own size.

        Returns:
            One `sv.Detections` per image: xyxy float32 pixels clipped to the image, YuNet's score as
            confidence, landmarks float32 (n, 5, 2) (eyes, nose tip, mouth corners) in `data["landmarks"]`.
        """
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> sv.Detections:
        height, width = image.shape[:2]
        with self._lock:
            self._net.setInputSize((width, height))
            _, rows = self._net.detect(image)
        rows = np.empty((0, 15), np.float32) if rows is None else rows.reshape(-1, 15)
        xyxy = np.concatenate([rows[:, :2], rows[:, :2] + rows[:, 2:4]], 1)  # x, y, w, h -> xyxy
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        return make_detections(xyxy, rows[:, 14], rows[:, 4:14])
