"""Face detectors by name; each returns supervision.Detections (see base.FaceDetector).

The names and the spec parser load no model library (config checks use them); `FaceDetector` is imported
from base.py on first access.
"""

from __future__ import annotations

import ast
import importlib
import re
from typing import TYPE_CHECKING, Any

from fer_yolo.errors import ConfigError

if TYPE_CHECKING:
    from fer_yolo.detectors.base import FaceDetector

#: Detector name -> "module:Class", imported only when asked for.
DETECTORS: dict[str, str] = {
    "mtcnn": "fer_yolo.detectors.mtcnn:MtcnnDetector",
    "scrfd": "fer_yolo.detectors.scrfd:ScrfdDetector",
    "yolo": "fer_yolo.detectors.yolo:YoloFaceDetector",
    "yunet": "fer_yolo.detectors.yunet:YunetDetector",
}
#: Detectors whose weights the user supplies (fer-yolo neither ships nor downloads them).
USER_WEIGHTS = ("scrfd", "yunet")


def parse_detector_spec(spec: str) -> tuple[str, dict]:
    """Split ``name:key=value,key=value`` into a name and constructor keywords (values as Python literals).

    ``name=PATH`` is short for ``name:weights=PATH`` (the whole rest is the path, colons and commas too).

    Example:
        >>> parse_detector_spec("mtcnn:min_face_size=10")
        ('mtcnn', {'min_face_size': 10})
        >>> parse_detector_spec("yunet=peers/face_detection_yunet_2023mar.onnx")
        ('yunet', {'weights': 'peers/face_detection_yunet_2023mar.onnx'})
    """
    shorthand = re.fullmatch(r"(\w+)=(.+)", spec, re.DOTALL)
    if shorthand:
        return shorthand[1], {"weights": shorthand[2]}
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, re.split(r",(?![^\[\(]*[\]\)])", rest)):  # commas outside [] and ()
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"bad detector setting {item!r} in {spec!r}", "use name:key=value,key=value")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return name, kwargs


def build_detector(name: str, **kwargs) -> FaceDetector:
    """Construct a registered detector.

    Raises:
        ConfigError: unknown name or constructor keywords.
    """
    if name not in DETECTORS:
        raise ConfigError(f"unknown detector {name!r}", f"choose one of {sorted(DETECTORS)}")
    module_name, class_name = DETECTORS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad settings for detector {name!r}: {e}") from e


def __getattr__(name: str) -> Any:
    """`FaceDetector`, imported from base.py (numpy, supervision) on first access (PEP 562)."""
    if name == "FaceDetector":
        from fer_yolo.detectors.base import FaceDetector

        return FaceDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
