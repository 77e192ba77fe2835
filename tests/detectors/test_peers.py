"""YuNet and SCRFD, the peer detectors on weights the user supplies: real photos, clear errors, decoding.

The peer weights are third-party files read from <data>/peers (tests skip without them); the SCRFD
decoding test builds its own tiny ONNX graph and needs no data.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import supervision as sv
from onnx import TensorProto, helper

from fer_yolo.config import load_config
from fer_yolo.detectors import build_detector, parse_detector_spec
from fer_yolo.detectors.base import LANDMARKS_KEY
from fer_yolo.detectors.scrfd import ScrfdDetector
from fer_yolo.detectors.yunet import YunetDetector
from fer_yolo.errors import ConfigError, WeightsError
from tests.conftest import data_folder
from tests.detectors.test_mtcnn import PACKAGE_MULTIFACE_XYXY, dlib_boxes, read_image

REPO = Path(__file__).resolve().parents[2]
#: (detector, file in <data>/peers): both YuNet releases and SCRFD-500M with keypoints.
PEERS = [
    ("yunet", "yunet_n_640_640.onnx"),
    ("yunet", "face_detection_yunet_2023mar.onnx"),
    ("scrfd", "scrfd_500m_kps.onnx"),
]
PEER_IDS = ["yunet-n", "yunet-s", "scrfd-500m"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One OpenCV thread: the test machine has 2 cores and often a training running beside the tests."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


@pytest.fixture(scope="module")
def peers(data_root: Path) -> Path:
    """<data>/peers: third-party detector weights, read where they are (never copied into the repo)."""
    return data_folder(data_root, "peers")


def peer_file(peers: Path, name: str) -> Path:
    path = peers / name
    if not path.is_file():
        pytest.skip(f"{path} not found: this data folder lacks these peer weights (see peers/PROVENANCE.txt)")
    return path


@pytest.fixture(scope="module", params=PEERS, ids=PEER_IDS)
def peer(request: pytest.FixtureRequest, peers: Path):
    name, file = request.param
    return build_detector(name, weights=str(peer_file(peers, file)), iou=0.4)


def assert_faces_with_landmarks_inside(faces: sv.Detections, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    assert faces.xyxy.dtype == np.float32 and faces.confidence.dtype == np.float32
    assert np.all(faces.xyxy[:, :2] < faces.xyxy[:, 2:])
    assert np.all(faces.xyxy >= 0) and np.all(faces.xyxy <= [width, height, width, height])  # image pixels
    assert np.all((faces.confidence >= 0.5) & (faces.confidence <= 1))
    landmarks = faces.data[LANDMARKS_KEY]
    assert landmarks.shape == (len(faces), 5, 2) and landmarks.dtype == np.float32
    assert np.all(landmarks >= faces.xyxy[:, None, :2]) and np.all(landmarks <= faces.xyxy[:, None, 2:])


def test_peers_find_the_six_faces_of_multiface(peer, media: Path):
    image = read_image(media / "facenet_pytorch" / "multiface.jpg")  # 1200x630, a TV cast of 6

    faces = peer.detect(image)

    assert len(faces) == 6
    assert_faces_with_landmarks_inside(faces, image)
    # each face where the mtcnn package put it (measured: IoU 0.78-0.95 for the three files)
    assert np.all(sv.box_iou_batch(np.asarray(PACKAGE_MULTIFACE_XYXY), faces.xyxy).max(1) >= 0.6)


def test_peers_find_every_hand_labelled_dlib_face(peer, media: Path):
    folder = media / "dlib_faces"
    found = total = 0
    for name, truth in dlib_boxes(folder / "testing.xml").items():
        image = read_image(folder / name)
        faces = peer.detect(image)
        assert_faces_with_landmarks_inside(faces, image)
        if len(faces):
            found += int((sv.box_iou_batch(truth, faces.xyxy).max(1) >= 0.5).sum())
        total += len(truth)

    assert (found, total) == (25, 25)  # measured: all three files find all 25


def test_peers_detect_batch_equals_detect_per_image(peer, media: Path):
    images = [read_image(media / "dlib_faces" / name) for name in ("2008_002470.jpg", "2009_004587.jpg")]
    images.append(np.full((240, 320, 3), 127, np.uint8))

    batched = peer.detect_batch(images)

    assert [len(d) for d in batched] == [len(peer.detect(image)) for image in images]
    assert len(batched[0]) == 6 and len(batched[2]) == 0
    np.testing.assert_allclose(batched[0].xyxy, peer.detect(images[0]).xyxy, atol=1e-3)
    assert batched[2].data[LANDMARKS_KEY].shape == (0, 5, 2)
    assert peer.detect_batch([]) == []


def test_scrfd_at_320_runs_the_fixed_640_file_with_a_dynamic_input(peers: Path, media: Path):
    detector = ScrfdDetector(peer_file(peers, "scrfd_500m_kps.onnx"), imgsz=320)
    image = read_image(media / "facenet_pytorch" / "multiface.jpg")

    faces = detector.detect(image)

    assert not detector.fixed and len(faces) == 6
    assert_faces_with_landmarks_inside(faces, image)


def test_name_equals_path_specs_build_peers_side_by_side(peers: Path):
    specs = [f"{name}={peer_file(peers, file)}" for name, file in PEERS]

    detectors = [build_detector(name, **kwargs) for name, kwargs in map(parse_detector_spec, specs)]

    assert [type(d) for d in detectors] == [YunetDetector, YunetDetector, ScrfdDetector]
    assert [Path(d.weights).name for d in detectors] == [file for _, file in PEERS]


def test_eval_detector_compares_peers_in_one_run(peers: Path, widerface: Path, tmp_path: Path):
    from fer_yolo.evaluation.detector_eval import evaluate_detectors

    specs = [f"yunet={peer_file(peers, PEERS[1][1])}", f"scrfd:weights='{peer_file(peers, PEERS[2][1])}'"]

    table = evaluate_detectors(specs, widerface, widerface / "val_holdout.txt", tmp_path, limit=3, threads=1)

    assert "| yunet | weights=" in table and "| scrfd | weights=" in table
    assert (tmp_path / "results.json").is_file() and (tmp_path / "pr.png").stat().st_size > 0


def test_the_pipeline_runs_on_a_peer_detector(peers: Path, media: Path, caplog):
    weights = peer_file(peers, "face_detection_yunet_2023mar.onnx")
    cfg = load_config(overrides={"pipeline": {"detector": "yunet", "detector_weights": str(weights)}})
    with caplog.at_level("WARNING", logger="fer_yolo.pipeline"):
        from fer_yolo.pipeline import Pipeline

        pipeline = Pipeline.from_config(cfg["pipeline"] | {"device": "cpu", "imgsz": 640})
    assert [r.getMessage() for r in caplog.records] == ["ignored with detector yunet (YOLO only): imgsz=640"]
    assert isinstance(pipeline.detector, YunetDetector) and pipeline.weights["detector"] == str(weights)

    faces, _ = pipeline.process(read_image(media / "facenet_pytorch" / "multiface.jpg"))

    assert len(faces) == 6 and faces.data["emotion_probs"].shape == (6, 7)


# --- SCRFD decoding on a tiny graph built here: no data needed ---

#: A 32x32 input: 4x4, 2x2 and 1x1 cells at strides 8, 16, 32, two anchors each.
TINY_SIZE, TINY_ROWS = 32, {8: 32, 16: 8, 32: 2}
#: Planted anchors: (stride, row index, score, box distances l t r b, keypoint offsets), in stride units.
#: A: stride 16, cell (1, 1), anchor 0: centre (16, 16) -> box (8, 12, 24, 28).
#: B: the same box from stride 8, cell (2, 2), anchor 1, scored lower: removed by NMS.
#: C: below conf. D: stride 8, cell (3, 0), anchor 0: centre (0, 24) -> box (0, 22, 4, 26).
KPS_A = [-0.25, -0.125, 0.25, -0.125, 0, 0, -0.25, 0.25, 0.25, 0.25]
PLANTED = [
    (16, 6, 0.9, [0.5, 0.25, 0.5, 0.75], KPS_A),
    (8, 21, 0.8, [1, 0.5, 1, 1.5], [0] * 10),
    (32, 1, 0.3, [0, 0, 0.5, 0.5], [0] * 10),
    (8, 24, 0.6, [0, 0.25, 0.5, 0.25], [0.25] * 10),
]


def tiny_scrfd(path: Path, keypoints: bool = True) -> Path:
    """An ONNX graph with SCRFD's outputs (interleaved per stride, as some exports order them) holding
    PLANTED; each output adds 0 x the input's mean, so the graph reads its (1, 3, 32, 32) input."""
    widths = (1, 4, 10) if keypoints else (1, 4)
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0)]
    nodes.append(helper.make_node("Mul", ["mean", "zero"], ["nothing"]))
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])]
    outputs = []
    for stride, rows in TINY_ROWS.items():
        for width in widths:
            values = np.zeros((1, rows, width), np.float32)
            for s, row, score, dist, kps in PLANTED:
                if s == stride:
                    values[0, row] = {1: [score], 4: dist, 10: kps}[width]
            name = f"out_{stride}_{width}"
            inits.append(helper.make_tensor(f"{name}_c", TensorProto.FLOAT, values.shape, values.ravel()))
            nodes.append(helper.make_node("Add", [f"{name}_c", "nothing"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, values.shape))
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, TINY_SIZE, TINY_SIZE])
    graph = helper.make_graph(nodes, "tiny_scrfd", [image], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_scrfd_decodes_planted_outputs_into_image_pixels(tmp_path: Path):
    detector = ScrfdDetector(tiny_scrfd(tmp_path / "tiny scrfd.onnx"), imgsz=TINY_SIZE, conf=0.5)
    image = np.zeros((48, 64, 3), np.uint8)  # scale 0.5 onto 32x24, padded by 4 above and below

    faces = detector.detect(image)

    assert detector.fixed
    np.testing.assert_allclose(faces.xyxy, [[16, 16, 48, 48], [0, 36, 8, 44]])
    np.testing.assert_allclose(faces.confidence, [0.9, 0.6])
    landmarks = [[24, 20], [40, 20], [32, 24], [24, 32], [40, 32]]
    np.testing.assert_allclose(faces.data[LANDMARKS_KEY][0], landmarks)


def test_scrfd_keeps_the_overlapping_box_when_nms_allows_it(tmp_path: Path):
    detector = ScrfdDetector(tiny_scrfd(tmp_path / "tiny.onnx"), imgsz=TINY_SIZE, conf=0.2, iou=1.0)

    faces = detector.detect(np.zeros((32, 32, 3), np.uint8))

    np.testing.assert_allclose(faces.confidence, [0.9, 0.8, 0.6, 0.3])
    np.testing.assert_allclose(faces.xyxy[:2], [[8, 12, 24, 28]] * 2)


def write_junk(path: Path) -> Path:
    path.write_bytes(b"not an onnx file")
    return path


@pytest.mark.parametrize(
    ("name", "make_weights", "expectation"),
    [
        ("yunet", lambda tmp: None, pytest.raises(WeightsError, match="needs a weights file")),
        ("yunet", lambda tmp: tmp / "none.onnx", pytest.raises(WeightsError, match="yunet weights not")),
        ("yunet", lambda tmp: write_junk(tmp / "junk.onnx"), pytest.raises(WeightsError, match="as YuNet")),
        ("yunet", lambda tmp: tiny_scrfd(tmp / "s.onnx"), pytest.raises(WeightsError, match="as YuNet")),
        ("scrfd", lambda tmp: "", pytest.raises(WeightsError, match="needs a weights file")),
        ("scrfd", lambda tmp: tmp / "none.onnx", pytest.raises(WeightsError, match="scrfd weights not")),
        ("scrfd", lambda tmp: write_junk(tmp / "junk.onnx"), pytest.raises(WeightsError, match="as ONNX")),
        (
            "scrfd",
            lambda tmp: tiny_scrfd(tmp / "no kps.onnx", keypoints=False),
            pytest.raises(WeightsError, match="not an SCRFD export with keypoints"),
        ),
    ],
    ids=[
        "yunet-none",
        "yunet-missing",
        "yunet-junk",
        "yunet-other-model",
        "scrfd-none",
        "scrfd-missing",
        "scrfd-junk",
        "scrfd-no-keypoints",
    ],
)
def test_peer_weights_errors_say_what_to_pass(
    name: str, make_weights, expectation: AbstractContextManager, tmp_path: Path
):
    with expectation as error:
        build_detector(name, weights=make_weights(tmp_path))
    assert "--weights PATH" in error.value.hint and f"--compare {name}=PATH" in error.value.hint


def test_scrfd_refuses_a_size_its_graph_cannot_run(tmp_path: Path):
    with pytest.raises(WeightsError, match="not an SCRFD export"):  # its outputs stay sized for 32x32
        ScrfdDetector(tiny_scrfd(tmp_path / "tiny.onnx"), imgsz=64)


# --- configuration and command line ---


@pytest.mark.parametrize(
    ("pipeline", "expectation"),
    [
        ({"detector": "yunet"}, pytest.raises(ConfigError, match="yunet needs pipeline.detector_weights")),
        ({"detector": "scrfd"}, pytest.raises(ConfigError, match="scrfd needs pipeline.detector_weights")),
        ({"detector": "yunett"}, pytest.raises(ConfigError, match="must be one of")),
        ({"detector": "yunet", "detector_weights": "y.onnx"}, None),
        ({"detector": "scrfd", "detector_weights": "s.onnx"}, None),
        ({"detector": "mtcnn"}, None),
    ],
    ids=["yunet-no-weights", "scrfd-no-weights", "unknown", "yunet", "scrfd", "mtcnn"],
)
def test_config_checks_the_detector_and_its_weights(pipeline: dict, expectation):
    if expectation is None:
        assert load_config(overrides={"pipeline": pipeline})["pipeline"]["detector"] == pipeline["detector"]
        return
    with expectation as error:
        load_config(overrides={"pipeline": pipeline})
    assert "--weights PATH" in error.value.hint or "did you mean 'yunet'" in error.value.hint


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("yunet=peers/yunet.onnx", ("yunet", {"weights": "peers/yunet.onnx"})),
        ("scrfd=/a dir, with comma/s.onnx", ("scrfd", {"weights": "/a dir, with comma/s.onnx"})),
        ("scrfd=C:\\peers\\s.onnx", ("scrfd", {"weights": "C:\\peers\\s.onnx"})),
        ("scrfd:weights='s.onnx',imgsz=320", ("scrfd", {"weights": "s.onnx", "imgsz": 320})),
        ("mtcnn:min_face_size=10", ("mtcnn", {"min_face_size": 10})),
        ("mtcnn", ("mtcnn", {})),
    ],
)
def test_compare_specs_take_name_equals_path(spec: str, expected: tuple):
    assert parse_detector_spec(spec) == expected


def test_cli_refuses_a_peer_detector_without_weights():
    env = os.environ | {"PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "fer_yolo.cli", "predict", "a.jpg", "--detector", "scrfd"]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: pipeline.detector scrfd needs pipeline.detector_weights" in result.stderr
    assert "hint: pass --weights PATH" in result.stderr


@pytest.mark.parametrize(
    ("name", "settings"),
    [("yunet", {"conf": 1.5}), ("yunet", {"max_det": 0}), ("scrfd", {"imgsz": 100}), ("scrfd", {"iou": -1})],
)
def test_peer_settings_out_of_range_are_refused_before_the_weights_are_read(name: str, settings: dict):
    with pytest.raises(ConfigError, match=f"bad {'YuNet' if name == 'yunet' else 'SCRFD'} settings"):
        build_detector(name, weights="no such file.onnx", **settings)
