"""The cached detector pass over dataset faces: boxes the pipeline would draw, found once, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_yolo.data.face_boxes import cache_file, detect_dataset_faces, pad_face
from fer_yolo.detectors.yolo import YoloFaceDetector


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FER_YOLO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def detector(face_weights: Path) -> YoloFaceDetector:
    return YoloFaceDetector(face_weights, conf=0.1)


def read(files: list[Path], flag: int) -> list[np.ndarray]:
    return [cv2.imread(str(f), flag) for f in files]


def test_pad_face_centres_the_image_on_a_grey_canvas():
    canvas, p = pad_face(np.full((48, 48), 7, np.uint8), 0.5)
    assert p == 24 and canvas.shape == (96, 96, 3)
    assert (canvas[24:72, 24:72] == 7).all() and (canvas[:24] == 114).all()


def test_dataset_faces_are_found_once_and_read_back_from_the_cache(
    rafdb: Path, fer2013: Path, detector: YoloFaceDetector, cache: Path
):
    calls = []

    def counted(batch):
        calls.append(len(batch))
        return detector.detect_batch(batch)

    raf = sorted((rafdb / "train/happy").glob("*.jpg"))[:24]
    images, names = read(raf, cv2.IMREAD_COLOR), [f.name for f in raf]
    boxes, found = detect_dataset_faces(images, names, counted, {"set": "raf"}, batch=8)
    assert calls == [8, 8, 8] and found.mean() >= 0.9  # aligned faces: the detector finds nearly all
    w = boxes[found, 2] - boxes[found, 0]
    assert (w > 60).all() and (w < 130).all()  # the face fills most of the 100 px image
    again, found_again = detect_dataset_faces(images, names, counted, {"set": "raf"})
    assert calls == [8, 8, 8] and np.array_equal(again, boxes) and np.array_equal(found_again, found)
    larger = [cv2.resize(im, (200, 200)) for im in images[:2]] + images[2:]  # converted again, at 200 px
    resized, _ = detect_dataset_faces(larger, names, counted, {"set": "raf"})
    assert calls[3] == 2 and np.allclose(resized[:2][found[:2]], 2 * boxes[:2][found[:2]], atol=8)
    assert np.array_equal(resized[2:], boxes[2:])

    fer = sorted((fer2013 / "train/angry").glob("*.jpg"))[:16]
    _, fer_found = detect_dataset_faces(
        read(fer, cv2.IMREAD_GRAYSCALE), [f.name for f in fer], counted, {"set": "fer"}
    )
    assert calls[4:] == [16] and fer_found.mean() >= 0.8  # grey 48 px crops are found too


def test_an_interrupted_pass_resumes_and_missed_faces_take_the_median_box(
    rafdb: Path, detector: YoloFaceDetector, cache: Path
):
    raf = sorted((rafdb / "train/sad").glob("*.jpg"))[:6]
    images = read(raf, cv2.IMREAD_COLOR) + [np.full((100, 100, 3), 128, np.uint8)]  # a blank: no face
    names = [f.name for f in raf] + ["blank.jpg"]
    boxes, found = detect_dataset_faces(images, names, detector.detect_batch, {"k": 1}, batch=4)
    assert not found[-1] and found[:-1].all()
    rel = np.median(boxes[:-1] / 100, axis=0)
    assert np.allclose(boxes[-1], rel * 100, atol=1e-3)

    path = cache_file({"k": 1, "pad": 0.5})
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4]) + '\n{"file": "torn')  # killed after 4 images, mid-line
    seen = []
    detect_dataset_faces(images, names, lambda b: seen.append(len(b)) or detector.detect_batch(b), {"k": 1})
    assert seen == [3]  # only the three not yet recorded
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if not ln.endswith("torn")]
    assert sorted(r["file"] for r in rows) == sorted(names)
    again, _ = detect_dataset_faces(images, names, lambda b: pytest.fail("all cached"), {"k": 1})
    assert np.allclose(again, boxes)
