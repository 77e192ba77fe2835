"""YOLO face detector: training through `train_detector`, clear errors, real weights that load and detect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_yolo.config import load_config
from fer_yolo.detectors.yolo import YoloFaceDetector
from fer_yolo.errors import DatasetError, WeightsError
from fer_yolo.train.detector import DetectorTrainConfig, train_detector


def config(**over) -> DetectorTrainConfig:
    return DetectorTrainConfig(**load_config(overrides={"train_detector": over})["train_detector"])


def test_missing_weights_is_a_clear_error(tmp_path: Path):
    with pytest.raises(WeightsError, match="not found"):
        YoloFaceDetector(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        YoloFaceDetector(tmp_path / "junk.pt")


@pytest.mark.parametrize(
    ("over", "error"),
    [({"data": "/no/data.yaml"}, DatasetError), ({"data": __file__, "init": "/no/init.pt"}, WeightsError)],
)
def test_bad_training_inputs_are_clear_errors(over, error):
    with pytest.raises(error):
        train_detector(config(**over))


@pytest.mark.slow
def test_tiny_widerface_run_gives_weights_that_detect(tiny_wider_yaml: Path, tmp_path: Path):
    run = train_detector(
        config(
            data=str(tiny_wider_yaml),
            epochs=1,
            imgsz=64,
            batch=4,
            device="cpu",
            workers=0,
            cache="none",
            plots=False,
            project=str(tmp_path / "runs"),
            name="t",
        )
    )
    assert (run / "results.csv").is_file()
    detector = YoloFaceDetector(run / "weights/last.pt", imgsz=64, conf=0.0, device="cpu")
    faces = detector.detect_batch([np.zeros((120, 160, 3), np.uint8)] * 2)
    assert len(faces) == 2
    for f in faces:
        assert f.xyxy.dtype == np.float32 and f.confidence is not None and (f.class_id == 0).all()
        assert (f.xyxy[:, [0, 2]] <= 160).all() and (f.xyxy[:, [1, 3]] <= 120).all()
