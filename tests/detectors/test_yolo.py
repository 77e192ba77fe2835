"""YOLO face detector: training through `train_detector`, clear errors, real weights that load and detect."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fer_yolo.config import load_config
from fer_yolo.detectors.yolo import YoloFaceDetector, letterbox_batch, load_yolo_checkpoint, save_face_weights
from fer_yolo.errors import DatasetError, WeightsError
from fer_yolo.train.detector import DetectorTrainConfig, train_detector
from fer_yolo.utils.paths import REPO_ROOT, default_weights
from tests.helpers.payload import CodeRunningPayload


def config(**over) -> DetectorTrainConfig:
    return DetectorTrainConfig(**load_config(overrides={"train_detector": over})["train_detector"])


def test_missing_weights_is_a_clear_error(tmp_path: Path):
    with pytest.raises(WeightsError, match="not found"):
        YoloFaceDetector(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        YoloFaceDetector(tmp_path / "junk.pt")


@pytest.mark.parametrize(
    ("over", "error", "message"),
    [
        ({"data": "/no/data.yaml"}, DatasetError, "data.yaml not found: /no/data.yaml"),
        ({"data": __file__, "init": "/no/init.pt"}, WeightsError, "init weights not found: /no/init.pt"),
        ({"data": __file__, "model": "yolo11n.pt"}, WeightsError, "detector model not found: yolo11n.pt"),
        ({"data": __file__, "model": "https://x.org/a.yaml"}, WeightsError, "model not found: https"),
    ],
)
def test_bad_training_inputs_are_clear_errors(over, error, message):
    with pytest.raises(error, match=message):
        train_detector(config(**over))


@pytest.mark.parametrize("field", ["model", "init", "resume"])
def test_training_never_runs_code_stored_in_a_checkpoint(field: str, tmp_path: Path):
    marker, bad = tmp_path / "code_ran", tmp_path / "bad.pt"
    torch.save({"model": CodeRunningPayload(marker)}, bad)
    with pytest.raises(WeightsError, match="cannot load"):
        if field in ("model", "init"):
            train_detector(config(data=__file__, **{field: str(bad)}))
        else:
            train_detector(config(), resume=bad)
    assert not marker.exists()


def tiny_config(data: Path, tmp_path: Path, epochs: int = 1) -> DetectorTrainConfig:
    return config(
        data=str(data),
        epochs=epochs,
        imgsz=64,
        batch=4,
        device="cpu",
        workers=0,
        cache="none",
        plots=False,
        project=str(tmp_path / "runs"),
        name="t",
    )


def test_letterbox_maps_back_to_each_image():
    images = [np.zeros((100, 200, 3), np.uint8), np.zeros((300, 150, 3), np.uint8)]
    batch, transforms = letterbox_batch(images, imgsz=64, stride=32)
    assert batch.shape == (2, 64, 64, 3)  # one canvas: widest 64 x tallest 64, multiples of 32
    (r0, px0, py0), (r1, px1, py1) = transforms
    assert r0 == pytest.approx(0.32) and (px0, py0) == (0, 16)  # 200x100 -> 64x32, centred vertically
    assert r1 == pytest.approx(64 / 300) and (px1, py1) == (16, 0)  # 150x300 -> 32x64, centred horizontally
    assert (batch[0, :16] == 114).all() and (batch[0, 16:48] == 0).all()  # padding grey, image black


@pytest.mark.slow
def test_tiny_widerface_run_gives_weights_that_detect_and_pack(
    tiny_wider_yaml: Path, tmp_path: Path, no_network: list
):
    run = train_detector(tiny_config(tiny_wider_yaml, tmp_path))
    assert no_network == []  # training is offline
    assert (run / "results.csv").is_file()
    for name in ("best.pt", "last.pt"):  # stripped at the end of the run, read by the allow-list loader
        # (ultralytics' strip_optimizer turns a failed load into a warning and leaves the file as it was)
        saved = torch.load(run / "weights" / name, map_location="cpu", weights_only=False)  # our own run
        assert saved["optimizer"] is None and saved["epoch"] == -1, name
    results = (run / "results.csv").read_text()
    assert train_detector(tiny_config(tiny_wider_yaml, tmp_path), resume=run) == run  # finished: no new run
    assert (run / "results.csv").read_text() == results and no_network == []  # ultralytics would start COCO8
    detector = YoloFaceDetector(run / "weights/last.pt", imgsz=64, conf=0.0, device="cpu")
    photo = cv2.imread(str(next((tiny_wider_yaml.parent / "images/train").iterdir())))  # a real WIDER image
    images = [photo, np.full((90, 60, 3), 200, np.uint8)]
    faces = detector.detect_batch(images)
    assert len(faces) == 2
    for f, im in zip(faces, images):  # at conf 0 even a barely trained model returns candidate boxes
        h, w = im.shape[:2]
        assert len(f) > 0 and f.xyxy.dtype == np.float32 and (f.class_id == 0).all()
        assert ((f.confidence >= 0) & (f.confidence <= 1)).all() and (f.xyxy >= 0).all()
        assert (f.xyxy[:, [0, 2]] <= w).all() and (f.xyxy[:, [1, 3]] <= h).all()
        assert (f.xyxy[:, 2:] > f.xyxy[:, :2]).all()
    packed = save_face_weights(run / "weights/last.pt", tmp_path / "face.pt", note="test")
    raw = torch.load(packed, map_location="cpu", weights_only=False)  # our own file: inspect it as stored
    assert next(raw["model"].parameters()).dtype == torch.float16 and "optimizer" not in raw
    assert load_yolo_checkpoint(packed)["fer_yolo"]["note"] == "test"
    again_bytes = save_face_weights(run / "weights/last.pt", tmp_path / "face2.pt", note="test").read_bytes()
    assert again_bytes == packed.read_bytes()  # packed again, the same bytes: an export recording it matches
    again = YoloFaceDetector(packed, imgsz=64, conf=0.0, device="cpu").detect_batch(images)
    for a, b in zip(faces, again):  # fp16 storage: the most confident boxes come back, to within rounding
        assert len(b) > 0
        for box in a.xyxy[np.argsort(-a.confidence)[:5]]:
            assert np.abs(b.xyxy - box).max(1).min() <= 0.5


@pytest.mark.slow
def test_frozen_layers_keep_the_init_files_weights(tiny_wider_yaml: Path, tmp_path: Path):
    # configs/face_yolo11n_rm1_320.yaml's case: a head without DFL learns on the shipped file's layers 0-22
    init = default_weights("detector")
    cfg = tiny_config(tiny_wider_yaml, tmp_path)
    model = str(REPO_ROOT / "configs/models/yolo11n-face-rm1.yaml")
    run = train_detector(dataclasses.replace(cfg, model=model, init=str(init), freeze=23))
    before = dict(load_yolo_checkpoint(init)["model"].half().named_parameters())
    after = dict(load_yolo_checkpoint(run / "weights/last.pt")["model"].half().named_parameters())
    kept = [k for k in before if int(k.split(".")[1]) < 23]
    assert kept and all(torch.equal(after[k], before[k]) for k in kept)
    head = [k for k in after if k.startswith("model.23.cv3.") and after[k].shape == before[k].shape]
    assert head and any(not torch.equal(after[k], before[k]) for k in head)  # its class branch trained


@pytest.mark.slow
def test_interrupted_training_resumes_at_the_next_epoch(
    tiny_wider_yaml: Path, tmp_path: Path, monkeypatch, caplog
):
    from ultralytics.engine.trainer import BaseTrainer

    original = BaseTrainer._do_train

    def stop_after_first_epoch(self, *args, **kwargs):
        def interrupt(trainer):
            raise KeyboardInterrupt

        self.add_callback("on_fit_epoch_end", interrupt)  # after last.pt of epoch 1 is saved
        return original(self, *args, **kwargs)

    monkeypatch.chdir(tmp_path)  # started with relative paths, resumed from another directory
    cfg = tiny_config(tiny_wider_yaml.relative_to(tmp_path), Path("."), epochs=2)
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(BaseTrainer, "_do_train", stop_after_first_epoch)
        train_detector(cfg)
    run = tmp_path / "runs/t"
    assert len((run / "results.csv").read_text().splitlines()) == 2  # header + epoch 1
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(BaseTrainer, "_do_train", stop_after_first_epoch)
        train_detector(dataclasses.replace(cfg, epochs=1, name="one"))  # stopped after its last epoch's save
    one = tmp_path / "runs/one"
    caplog.set_level(logging.INFO, logger="fer_yolo.train.detector")
    assert load_yolo_checkpoint(one / "weights/last.pt")["optimizer"] is not None  # killed before the strip
    two = Path(shutil.copytree(one, tmp_path / "runs/two"))
    assert train_detector(cfg, resume=one) == one  # finished here (ultralytics would fail an assertion)
    data = tmp_path / cfg.data
    assert f"{one / 'weights/best.pt'} on {data}: mAP50 " in caplog.text  # validated
    data.rename(data.with_suffix(".moved"))
    assert train_detector(cfg, resume=two) == two  # its data gone: finished all the same, not validated
    assert f"{two / 'weights/best.pt'} not validated: data not found" in caplog.text
    data.with_suffix(".moved").rename(data)
    for name in ("one/weights/best.pt", "one/weights/last.pt", "two/weights/best.pt", "two/weights/last.pt"):
        saved = load_yolo_checkpoint(tmp_path / "runs" / name)  # as the trainer leaves them
        assert saved["optimizer"] is None and saved["epoch"] == -1, name
    monkeypatch.chdir(tmp_path / "wider/images")
    moved = run.rename(tmp_path / "moved")  # a run folder renamed, or copied to another machine
    assert train_detector(cfg, resume=moved) == moved and not run.exists()
    rows = (moved / "results.csv").read_text().splitlines()
    assert [r.split(",")[0].strip() for r in rows[1:]] == ["1", "2"]
