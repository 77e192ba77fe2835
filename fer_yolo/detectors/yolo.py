"""YOLO face detector (ultralytics), returning the same sv.Detections as every detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import supervision as sv

from fer_yolo.detectors.base import FaceDetector, make_detections
from fer_yolo.errors import WeightsError
from fer_yolo.utils.device import select_device
from fer_yolo.utils.ultralytics_env import setup_ultralytics


class YoloFaceDetector(FaceDetector):
    """Faces from an ultralytics YOLO detection checkpoint.

    Args:
        weights: Checkpoint path (a run's weights/best.pt or a shipped file).
        imgsz: Inference size (longest side, letterboxed), pixels.
        conf: Minimum confidence kept.
        iou: NMS IoU threshold.
        device: auto | cpu | cuda | cuda:N.
        half: fp16 inference (CUDA only).
        max_det: Most faces per image.

    Raises:
        WeightsError: The checkpoint is missing or unreadable.
    """

    def __init__(
        self,
        weights: str | Path,
        imgsz: int = 320,
        conf: float = 0.25,
        iou: float = 0.5,
        device: str = "auto",
        half: bool = True,
        max_det: int = 1000,
    ) -> None:
        weights = Path(weights)
        if not weights.is_file():
            raise WeightsError(
                f"YOLO face weights not found: {weights}",
                "pass --weights or train with `fer-yolo train detector`",
            )
        setup_ultralytics()
        from ultralytics import YOLO

        try:
            self.model = YOLO(str(weights), task="detect")
        except Exception as e:  # ultralytics raises several types for foreign files
            raise WeightsError(
                f"cannot load {weights} as YOLO weights: {e}", "pass a YOLO detection checkpoint"
            ) from e
        self.device = select_device(device)
        self.kwargs = dict(
            imgsz=imgsz,
            conf=conf,
            iou=iou,
            max_det=max_det,
            verbose=False,
            device=str(self.device),
            half=half and self.device.type == "cuda",
        )

    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        results = self.model.predict(images, **self.kwargs)
        return [make_detections(r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy()) for r in results]
