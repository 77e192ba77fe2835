"""fer-yolo: real-time facial-emotion detection (face detector -> tracker -> emotion head).

The command line is a thin layer over this API:

    import cv2
    from fer_yolo import Pipeline

    pipeline = Pipeline.from_config()  # shipped weights, default settings
    faces, latency_ms = pipeline.process(cv2.imread("group.jpg"))
    print(faces.xyxy, faces.data["emotion"])
    for result in pipeline.run("clip.mp4"):
        print(result.frame.index, result.faces.data["emotion"])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module defining it, imported on first access (PEP 562), so that `import fer_yolo`
#: (and `fer-yolo --help`) loads neither torch nor OpenCV nor ultralytics.
_EXPORTS: dict[str, str] = {
    "EMOTIONS": "fer_yolo.emotion.labels",
    "ConvertSettings": "fer_yolo.data.convert.engine",
    "EmotionClassifier": "fer_yolo.emotion.classifier",
    "EmotionTrainConfig": "fer_yolo.train.emotion",
    "FaceAnnotator": "fer_yolo.annotation",
    "FaceDetector": "fer_yolo.detectors.base",
    "FerYoloError": "fer_yolo.errors",
    "FrameResult": "fer_yolo.pipeline",
    "MtcnnDetector": "fer_yolo.detectors.mtcnn",
    "Pipeline": "fer_yolo.pipeline",
    "YoloFaceDetector": "fer_yolo.detectors.yolo",
    "build_detector": "fer_yolo.detectors",
    "convert": "fer_yolo.data.convert.engine",
    "load_config": "fer_yolo.config",
    "open_sources": "fer_yolo.sources",
    "train_emotion": "fer_yolo.train.emotion",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """The public object `name`, imported from its module on first access (then cached here)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the public ones not imported yet included."""
    return sorted(set(globals()) | set(__all__))
