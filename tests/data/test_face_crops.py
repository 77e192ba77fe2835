"""Training faces are cut from detector boxes exactly as the pipeline cuts the faces it classifies."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fer_yolo.config import load_config
from fer_yolo.data.crops import load_crops
from fer_yolo.data.face_crops import FaceBoxer, FaceImages, jitter_boxes, load_split_faces, split_by_list
from fer_yolo.emotion.classifier import EmotionClassifier
from fer_yolo.emotion.models import build_model, grow_resnet_state
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.errors import DatasetError
from fer_yolo.pipeline import Pipeline

PRE = Preprocess(64, 3, (0.5,) * 3, (0.5,) * 3, grey=False, source_size=0)


def test_a_photos_training_crop_is_the_crop_the_pipeline_classifies(media: Path, monkeypatch):
    image = cv2.imread(str(media / "facenet_pytorch/multiface.jpg"))
    pipeline = Pipeline.from_config(load_config()["pipeline"])
    pipeline.classifier.preprocess = PRE
    seen = []
    monkeypatch.setattr(
        EmotionClassifier, "predict_inputs", lambda self, x: seen.append(x) or np.full((len(x), 7), 1 / 7)
    )
    faces, _ = pipeline.process(image)
    assert len(faces) == 6
    margin = load_config()["pipeline"]["margin"]
    train = FaceImages([image], faces.xyxy[:1], np.ones(1, bool), np.zeros(1, np.int64))
    for k, box in enumerate(faces.xyxy):
        train.boxes = box[None]
        cut = train.inputs(PRE, np.array([0]), np.array([margin]), train.boxes)
        assert np.array_equal(cut[0], seen[0][k])  # bit for bit
    other = train.inputs(PRE, np.array([0]), np.array([0.3]), train.boxes)
    assert not np.array_equal(other[0], seen[0][-1])  # the margin matters: the check above can fail


def test_the_boxer_runs_the_yolo_settings_it_is_given(tmp_path: Path):
    from fer_yolo.data.face_crops import FaceBoxer

    settings = load_config()["pipeline"] | {"imgsz": 352, "iou": 0.6}
    boxer, shipped = FaceBoxer(settings), FaceBoxer()
    assert (boxer.detector.imgsz, boxer.detector.iou) == (352, 0.6)  # eval emotion --set pipeline.imgsz=352
    assert (shipped.detector.imgsz, shipped.detector.iou) == (320, 0.5)
    assert boxer.key(tmp_path) | {"imgsz": 320, "iou": 0.5} == shipped.key(tmp_path)  # cached apart


def test_jitter_moves_and_scales_boxes_within_the_amount():
    boxes = np.tile([[10.0, 20.0, 50.0, 80.0]], (500, 1))  # 40 x 60, side 60
    out = jitter_boxes(boxes, 0.1, np.random.default_rng(0).random((500, 3)))
    c = (out[:, :2] + out[:, 2:]) / 2
    assert np.abs(c - [30, 50]).max() <= 6 + 1e-9 and np.abs(c - [30, 50]).max() > 5
    w = out[:, 2] - out[:, 0]
    assert w.min() >= 36 - 1e-9 and w.max() <= 44 + 1e-9 and np.allclose((out[:, 3] - out[:, 1]) / w, 1.5)


def test_a_validation_list_splits_the_train_folder(rafdb: Path, tmp_path: Path):
    root = tmp_path / "raf"
    (root / "train/fear").mkdir(parents=True)
    files = sorted((rafdb / "train/fear").glob("*.jpg"))[:5]
    for f in files:
        shutil.copy(f, root / "train/fear")
    small = load_crops(root, "train", 100, 3)
    held = {f"train/fear/{files[0].name}", f"train/fear/{files[1].name}"}
    train, val = split_by_list(small, root, held)
    assert len(val) == 2 and len(train) == len(small) - 2
    assert not {Path(p).name for p in train.paths} & {files[0].name, files[1].name}
    with pytest.raises(DatasetError, match="not in"):
        split_by_list(small, root, held | {"train/fear/nope.jpg"})


def test_an_unreadable_validation_split_is_an_error_not_a_split_left_out(rafdb: Path, tmp_path: Path):
    root = tmp_path / "raf"
    for split in ("train", "val"):
        (root / split / "fear").mkdir(parents=True)
    for f in sorted((rafdb / "train/fear").glob("*.jpg"))[:3]:
        shutil.copy(f, root / "train/fear")
        (root / "val/fear" / f.name).write_text("version https://git-lfs.github.com/spec/v1\n")  # not pulled
    with pytest.raises(DatasetError, match="none of its 3 images can be read"):
        load_split_faces(FaceBoxer(), str(root))  # before: trained on with no validation and no leak check


def test_a_grown_resnet34_computes_what_the_resnet18_did():
    torch.manual_seed(0)
    small = build_model("resnet18", 7, 1).eval()
    for m in small.modules():  # non-trivial statistics, as in a trained network
        if isinstance(m, torch.nn.BatchNorm2d):
            (
                m.running_mean.uniform_(-0.1, 0.1),
                m.running_var.uniform_(0.5, 1.5),
                m.weight.data.uniform_(0.5, 1.5),
            )
    big = build_model("resnet34", 7, 3).eval()
    big.load_state_dict(grow_resnet_state(small.state_dict(), big))
    grey = torch.rand(3, 1, 64, 64)
    assert torch.allclose(small(grey), big(grey.expand(-1, 3, -1, -1)), atol=1e-5)
    assert not torch.allclose(small(grey), build_model("resnet34", 7, 3).eval()(grey.expand(-1, 3, -1, -1)))
