"""fer-yolo: real-time facial-emotion detection (face detector -> tracker -> emotion head).

The command line is a thin layer over this API:

    import cv2
    from fer_yolo import Pipeline, load_config, open_sources

    pipeline = Pipeline.from_config(load_config()["pipeline"])  # shipped weights
    faces, latency_ms = pipeline.process(cv2.imread("group.jpg"))
    print(faces.xyxy, faces.data["emotion"])
"""

from __future__ import annotations

__version__ = "0.1.0"

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.config import load_config
from fer_yolo.data.convert.engine import ConvertSettings, convert
from fer_yolo.detectors import build_detector
from fer_yolo.detectors.base import FaceDetector
from fer_yolo.detectors.mtcnn import MtcnnDetector
from fer_yolo.detectors.yolo import YoloFaceDetector
from fer_yolo.emotion.classifier import EmotionClassifier
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.errors import FerYoloError
from fer_yolo.pipeline import FrameResult, Pipeline
from fer_yolo.sources import open_sources
from fer_yolo.train.emotion import EmotionTrainConfig, train_emotion

__all__ = [
    "EMOTIONS",
    "ConvertSettings",
    "EmotionClassifier",
    "EmotionTrainConfig",
    "FaceAnnotator",
    "FaceDetector",
    "FerYoloError",
    "FrameResult",
    "MtcnnDetector",
    "Pipeline",
    "YoloFaceDetector",
    "__version__",
    "build_detector",
    "convert",
    "load_config",
    "open_sources",
    "train_emotion",
]
