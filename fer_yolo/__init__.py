"""fer-yolo: real-time facial-emotion detection (face detector -> tracker -> emotion head).

The command line is a thin layer over this API:

    from fer_yolo import ConvertSettings, convert, load_config, MtcnnDetector
"""

from __future__ import annotations

__version__ = "0.1.0"

from fer_yolo.config import load_config
from fer_yolo.data.convert.engine import ConvertSettings, convert
from fer_yolo.detectors.base import FaceDetector
from fer_yolo.detectors.mtcnn import MtcnnDetector
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.errors import FerYoloError
from fer_yolo.train.emotion import EmotionTrainConfig, train_emotion

__all__ = [
    "EMOTIONS",
    "ConvertSettings",
    "EmotionTrainConfig",
    "FaceDetector",
    "FerYoloError",
    "MtcnnDetector",
    "__version__",
    "convert",
    "load_config",
    "train_emotion",
]
