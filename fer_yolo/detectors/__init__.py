"""Face detectors by name; each returns supervision.Detections (see base.FaceDetector)."""

from __future__ import annotations

import ast
import importlib
import re

from fer_yolo.detectors.base import FaceDetector
from fer_yolo.errors import ConfigError

#: Detector name -> "module:Class", imported only when asked for.
DETECTORS: dict[str, str] = {
    "mtcnn": "fer_yolo.detectors.mtcnn:MtcnnDetector",
    "yolo": "fer_yolo.detectors.yolo:YoloFaceDetector",
}


def parse_detector_spec(spec: str) -> tuple[str, dict]:
    """Split ``name:key=value,key=value`` into a name and constructor keywords (values as Python literals).

    Example:
        >>> parse_detector_spec("mtcnn:min_face_size=10")
        ('mtcnn', {'min_face_size': 10})
    """
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
