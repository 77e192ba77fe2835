"""MtcnnDetector, the PyTorch port of the mtcnn 1.0.0 package, on real photos."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import cv2
import joblib
import numpy as np
import pytest
import supervision as sv
import torch

from fer_yolo.detectors.base import LANDMARKS_KEY
from fer_yolo.detectors.mtcnn import MtcnnDetector
from fer_yolo.errors import ConfigError, WeightsError
from tests.helpers.payload import CodeRunningPayload

#: Recall at IoU >= 0.5 measured on dlib's testing.xml: 25 of 25 faces (1.0); the floor allows two misses.
DLIB_TESTING_MIN_RECALL = 0.92

#: The mtcnn 1.0.0 package's own output on multiface.jpg (TensorFlow 2.21, RGB input, thresholds 0.6/0.7/0.7,
#: min_face_size 20): xyxy boxes, face probabilities, and landmarks as (x of 5, y of 5).
PACKAGE_MULTIFACE_XYXY = [
    [418.42, 131.92, 500.33, 240.62],
    [861.87, 435.85, 950.66, 557.03],
    [555.32, 49.09, 631.38, 154.99],
    [621.46, 193.58, 695.25, 296.58],
    [725.23, 469.62, 794.69, 571.69],
    [228.84, 249.77, 303.73, 353.43],
]
PACKAGE_MULTIFACE_CONFIDENCE = [0.9996, 0.9969, 0.9943, 0.9775, 0.9688, 0.9645]
PACKAGE_MULTIFACE_LANDMARKS = [
    [450.94, 487.97, 473.86, 450.72, 481.75, 174.03, 177.53, 201.3, 213.96, 214.38],
    [887.52, 921.98, 897.43, 884.61, 916.15, 479.34, 485.8, 509.6, 522.78, 528.53],
    [579.51, 614.76, 598.33, 575.9, 609.85, 87.59, 90.31, 118.0, 125.62, 127.63],
    [639.21, 674.98, 654.96, 638.64, 676.12, 236.46, 236.51, 260.35, 268.05, 268.81],
    [741.38, 777.34, 762.05, 742.91, 780.79, 510.27, 507.1, 535.35, 543.53, 540.33],
    [245.35, 279.91, 267.63, 251.78, 290.65, 293.38, 284.8, 313.58, 327.11, 317.38],
]

MTCNN_MISSING = "mtcnn==1.0.0 (source of the original weights) is not installed"
needs_mtcnn_weights = pytest.mark.skipif(importlib.util.find_spec("mtcnn") is None, reason=MTCNN_MISSING)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One thread: the test machine has 2 cores and often a training running beside the tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector() -> MtcnnDetector:
    if importlib.util.find_spec("mtcnn") is None:
        pytest.skip(MTCNN_MISSING)
    return MtcnnDetector()


@pytest.fixture(scope="module")
def multiface_faces(detector: MtcnnDetector, media: Path) -> sv.Detections:
    """Faces found in facenet-pytorch's multiface.jpg (1200x630, a TV cast of 6)."""
    return detector.detect(read_image(media / "facenet_pytorch" / "multiface.jpg"))


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


def dlib_boxes(xml_path: Path) -> dict[str, np.ndarray]:
    """dlib imglab XML -> {image file: (n, 4) xyxy float boxes}."""
    boxes = {}
    for image in ET.parse(xml_path).getroot().iter("image"):
        rows = [[int(b.get(k)) for k in ("left", "top", "width", "height")] for b in image.iter("box")]
        xywh = np.asarray(rows, float).reshape(-1, 4)
        boxes[image.get("file")] = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
    return boxes


def assert_empty_faces(detections: sv.Detections) -> None:
    assert len(detections) == 0
    assert detections.xyxy.shape == (0, 4) and detections.xyxy.dtype == np.float32
    assert detections.confidence.shape == (0,) and detections.confidence.dtype == np.float32
    assert detections.class_id.shape == (0,)
    landmarks = detections.data[LANDMARKS_KEY]
    assert landmarks.shape == (0, 5, 2) and landmarks.dtype == np.float32


def test_mtcnn_finds_the_six_faces_of_multiface_with_landmarks_inside(multiface_faces: sv.Detections):
    faces = multiface_faces

    assert len(faces) == 6
    assert faces.xyxy.dtype == np.float32 and faces.confidence.dtype == np.float32
    assert np.all(faces.confidence > 0.7) and np.all(faces.confidence <= 1)
    assert np.all(faces.xyxy[:, :2] < faces.xyxy[:, 2:])
    landmarks = faces.data[LANDMARKS_KEY]
    assert landmarks.shape == (6, 5, 2) and landmarks.dtype == np.float32
    assert np.all(landmarks >= faces.xyxy[:, None, :2]) and np.all(landmarks <= faces.xyxy[:, None, 2:])


def test_mtcnn_matches_the_mtcnn_package_output_on_multiface(multiface_faces: sv.Detections):
    faces = multiface_faces

    np.testing.assert_allclose(faces.xyxy, PACKAGE_MULTIFACE_XYXY, atol=0.02)
    np.testing.assert_allclose(faces.confidence, PACKAGE_MULTIFACE_CONFIDENCE, atol=2e-4)
    landmarks = np.asarray(PACKAGE_MULTIFACE_LANDMARKS).reshape(-1, 2, 5).transpose(0, 2, 1)
    np.testing.assert_allclose(faces.data[LANDMARKS_KEY], landmarks, atol=0.02)


def test_mtcnn_recall_on_dlib_testing_faces(detector: MtcnnDetector, media: Path):
    folder = media / "dlib_faces"
    found = total = 0
    for name, truth in dlib_boxes(folder / "testing.xml").items():
        faces = detector.detect(read_image(folder / name))
        if len(faces):
            found += int((sv.box_iou_batch(truth, faces.xyxy).max(1) >= 0.5).sum())
        total += len(truth)

    assert total == 25
    assert found / total >= DLIB_TESTING_MIN_RECALL


def test_mtcnn_finds_no_face_among_dogs(detector: MtcnnDetector, media: Path):
    faces = detector.detect(read_image(media / "dlib_faces" / "dogs.jpg"))

    assert len(faces) == 0  # measured: none of the four dogs is taken for a face


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((480, 640, 3), np.uint8),
        np.full((300, 200, 3), 255, np.uint8),
        np.zeros((10, 10, 3), np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((0, 0, 3), np.uint8),
    ],
    ids=["blank", "white", "10x10", "1x1", "empty"],
)
def test_mtcnn_returns_empty_detections_without_faces(detector: MtcnnDetector, image: np.ndarray):
    assert_empty_faces(detector.detect(image))


def test_mtcnn_detect_batch_of_nothing_is_empty(detector: MtcnnDetector):
    assert detector.detect_batch([]) == []


def test_mtcnn_detect_batch_equals_detect_per_image(detector: MtcnnDetector, media: Path):
    group = read_image(media / "dlib_faces" / "2008_002470.jpg")
    other = read_image(media / "dlib_faces" / "2009_004587.jpg")
    images = [group, other, np.zeros((64, 64, 3), np.uint8), group]  # a repeated shape shares P-Net passes

    batched = detector.detect_batch(images)

    assert len(batched) == len(images)
    for image, together in zip(images, batched):
        alone = detector.detect(image)
        assert len(together) == len(alone)
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=1e-3)
        np.testing.assert_allclose(together.confidence, alone.confidence, atol=1e-5)
        np.testing.assert_allclose(together.data[LANDMARKS_KEY], alone.data[LANDMARKS_KEY], atol=1e-3)
    assert len(batched[0]) == 6


def write_corrupt_weights(folder: Path) -> Path:
    for name in ("pnet", "rnet", "onet"):
        (folder / f"{name}.lz4").write_bytes(b"not a joblib file")
    return folder


@pytest.mark.parametrize(
    ("make_dir", "expectation"),
    [
        (lambda tmp: tmp / "no such dir", pytest.raises(WeightsError, match="not found")),
        (lambda tmp: tmp, pytest.raises(WeightsError, match="not found")),
        (write_corrupt_weights, pytest.raises(WeightsError, match="cannot read")),
    ],
    ids=["missing-dir", "empty-dir", "corrupt-files"],
)
def test_mtcnn_weights_errors_carry_a_hint(tmp_path: Path, make_dir, expectation: AbstractContextManager):
    with expectation as error:
        MtcnnDetector(weights_dir=make_dir(tmp_path))
    assert "pip install mtcnn==1.0.0" in error.value.hint


@pytest.mark.parametrize(
    "payload",
    [lambda m: [CodeRunningPayload(m)], lambda m: [np.array([CodeRunningPayload(m)], dtype=object)]],
    ids=["object", "object-array"],
)
def test_mtcnn_weight_files_never_run_code(payload, tmp_path: Path):
    marker = tmp_path / "code_ran"
    for name in ("pnet", "rnet", "onet"):  # what a tampered package could ship: joblib lz4 files
        joblib.dump(payload(marker), tmp_path / f"{name}.lz4", compress="lz4")
    with pytest.raises(WeightsError, match="cannot read"):
        MtcnnDetector(weights_dir=tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("settings", "expectation"),
    [
        ({"scale_factor": 1.0}, pytest.raises(ConfigError, match="scale_factor")),
        ({"min_face_size": 0}, pytest.raises(ConfigError, match="min_face_size")),
        ({"thresholds": (0.6, 0.7)}, pytest.raises(ConfigError, match="thresholds")),
        ({"min_face_size": 40, "thresholds": (0.5, 0.6, 0.7)}, nullcontext()),
    ],
)
@needs_mtcnn_weights
def test_mtcnn_settings_are_checked(settings: dict, expectation: AbstractContextManager):
    with expectation:
        detector = MtcnnDetector(**settings)
        assert (detector.min_face_size, detector.thresholds) == (40, (0.5, 0.6, 0.7))  # valid ones are kept
