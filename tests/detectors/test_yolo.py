"""YOLO face detector wrapper: clear errors, and real weights from a tiny training run load and detect."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_yolo.errors import WeightsError


def test_missing_weights_is_a_clear_error(tmp_path: Path):
    from fer_yolo.detectors.yolo import YoloFaceDetector

    with pytest.raises(WeightsError, match="not found"):
        YoloFaceDetector(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        YoloFaceDetector(tmp_path / "junk.pt")


@pytest.mark.slow
def test_weights_from_a_tiny_widerface_run_detect(data_root: Path, tmp_path: Path):
    from fer_yolo.detectors.yolo import YoloFaceDetector
    from fer_yolo.utils.ultralytics_env import setup_ultralytics

    setup_ultralytics()
    from ultralytics import YOLO

    wider = data_root / "widerface"
    names = (wider / "val_fit.txt").read_text().split()[:8]
    for split in ("train", "val"):
        for name in names:
            for kind, suffix in (("images", ".webp"), ("labels", ".txt")):
                src = wider / Path(name).parent.as_posix().replace("images", kind) / (Path(name).stem + suffix)
                (tmp_path / kind / split).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, tmp_path / kind / split)
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: face\n")
    YOLO("yolov8n.yaml").train(data=str(tmp_path / "data.yaml"), epochs=1, imgsz=64, batch=4, device="cpu",
                               workers=0, project=str(tmp_path / "runs"), name="t", plots=False, verbose=False)
    detector = YoloFaceDetector(tmp_path / "runs/t/weights/last.pt", imgsz=64, conf=0.0, device="cpu")
    faces = detector.detect_batch([np.zeros((120, 160, 3), np.uint8)] * 2)
    assert len(faces) == 2
    for f in faces:
        assert f.xyxy.dtype == np.float32 and f.confidence is not None and (f.class_id == 0).all()
        assert (f.xyxy[:, [0, 2]] <= 160).all() and (f.xyxy[:, [1, 3]] <= 120).all()
