"""`fer-yolo export`: the shipped networks as ONNX files that run on their metadata alone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import supervision as sv
import torch

from fer_yolo.detectors.yolo import YoloFaceDetector, letterbox_batch
from fer_yolo.emotion.classifier import EmotionClassifier
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.errors import ConfigError, WeightsError
from fer_yolo.export import export_model, quantize_detector, quantize_emotion
from fer_yolo.utils.paths import default_weights


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.astype(np.float32)})[0]


def test_emotion_export_reads_real_faces_like_the_pipeline(emotion_weights: Path, fer2013: Path, tmp_path):
    result = export_model(emotion_weights, tmp_path)
    assert result.onnx == tmp_path / f"{emotion_weights.stem}.onnx" and result.kind == "emotion"
    assert result.max_abs_diff < 1e-3
    crops = [cv2.imread(str(f)) for e in EMOTIONS for f in sorted((fer2013 / "test" / e).glob("Public*"))[:3]]
    meta = metadata(result.onnx)
    assert meta["source_sha256"] == hashlib.sha256(emotion_weights.read_bytes()).hexdigest()
    pre = Preprocess.from_dict(json.loads(meta["preprocess"]))  # everything a consumer needs is in the file
    logits = run_onnx(result.onnx, pre.normalize(torch.from_numpy(pre.prepare_crops(crops))).numpy())
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = EmotionClassifier(emotion_weights, device="cpu", backend="torch").predict_crops(crops)
    assert json.loads(meta["class_names"]) == list(EMOTIONS)
    assert np.allclose(probs, expected, atol=1e-4)


def test_detector_export_finds_the_faces_of_a_real_photo(face_weights: Path, media: Path, tmp_path: Path):
    result = export_model(face_weights, tmp_path)
    assert result.onnx == tmp_path / "face_yolo11n.onnx" and result.kind == "detector"
    photo = cv2.imread(str(sorted((media / "dlib_faces").glob("*.jpg"))[0]))
    torch_faces = YoloFaceDetector(face_weights, device="cpu", backend="torch").detect(photo)
    assert len(torch_faces) >= 2
    meta = metadata(result.onnx)
    assert json.loads(meta["class_names"]) == ["face"]
    batch, ((r, px, py),) = letterbox_batch([photo], int(meta["imgsz"]), int(meta["stride"]))
    raw = run_onnx(result.onnx, batch[..., ::-1].transpose(0, 3, 1, 2) / 255)
    assert raw.shape[:2] == (1, 5)
    boxes = raw[0][:4, raw[0, 4] > 0.5].T  # centre x, y, w, h of confident anchors, letterboxed pixels
    centres = (boxes[:, :2] - [px, py]) / r
    for x1, y1, x2, y2 in torch_faces.xyxy:  # every face the pipeline finds has anchors at its centre
        assert (np.hypot(*(centres - [(x1 + x2) / 2, (y1 + y2) / 2]).T) < 0.1 * (x2 - x1)).any()


def test_export_refuses_files_that_are_not_weights(tmp_path: Path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        export_model(tmp_path / "junk.pt", tmp_path / "out")
    with pytest.raises(WeightsError, match="not found"):
        export_model(tmp_path / "missing.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_two_runs_best_weights_export_to_two_files(emotion_weights: Path, tmp_path: Path, monkeypatch):
    from fer_yolo.cli import main

    runs = [tmp_path / f"runs/{run}/weights/best.pt" for run in ("a", "b")]
    for path in runs:
        path.parent.mkdir(parents=True)
        path.write_bytes(emotion_weights.read_bytes())
    monkeypatch.setenv("HOME", str(tmp_path))  # --out ~/onnx: the home folder's, as every path option
    assert main(["export", "--weights", *map(str, runs), "--out", "~/onnx"]) == 0
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == ["a_best.onnx", "b_best.onnx"]


def test_int8_emotion_head_keeps_the_fp32_answers_on_real_faces(
    emotion_weights: Path, fer2013: Path, tmp_path: Path
):
    fp32 = export_model(emotion_weights, tmp_path)
    int8 = quantize_emotion(fp32, fer2013, n=128)
    assert int8.onnx == tmp_path / f"{emotion_weights.stem}_int8.onnx"
    assert int8.onnx.stat().st_size < fp32.onnx.stat().st_size / 3  # int8 weights, not float copies
    graph = onnx.load(str(int8.onnx)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 20  # activations are quantized
    meta = metadata(int8.onnx)
    assert (
        meta["preprocess"] == metadata(fp32.onnx)["preprocess"]
        and "99.999th-percentile ranges of 128 faces of fer2013" in meta["quantization"]
    )
    assert int8.agreement > 0.9 and 0 < int8.max_abs_diff < 0.25  # (measured 0.98 and 0.03)
    files = [
        (f, i) for i, e in enumerate(EMOTIONS) for f in sorted((fer2013 / "test" / e).glob("Public*"))[:20]
    ]
    pre = Preprocess.from_dict(json.loads(meta["preprocess"]))
    crops = [cv2.imread(str(f)) for f, _ in files]
    x = pre.normalize(torch.from_numpy(pre.prepare_crops(crops))).numpy()
    labels = np.array([i for _, i in files])
    right = {p.name: int((run_onnx(p, x).argmax(1) == labels).sum()) for p in (fp32.onnx, int8.onnx)}
    assert abs(right[fp32.onnx.name] - right[int8.onnx.name]) <= 5 and right[int8.onnx.name] > 85  # of 140


def test_int8_detector_finds_the_faces_fp32_finds_on_real_photos(
    face_weights: Path, widerface: Path, media: Path, tmp_path: Path
):
    fp32 = export_model(face_weights, tmp_path)
    int8 = quantize_detector(fp32, widerface / "train/images", imgsz=320, n=8, conf=0.4)
    assert int8.onnx == tmp_path / "face_yolo11n_int8.onnx" and int8.kind == "detector"
    assert int8.onnx.stat().st_size < fp32.onnx.stat().st_size / 2.5  # int8 weights, not float copies
    graph = onnx.load(str(int8.onnx)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 50  # the backbone's activations
    producer = {out: n for n in graph.node for out in n.output}
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    (dfl,) = [n for n in graph.node if n.op_type == "Softmax" and "/dfl" in n.name]  # decoding: fp32 input
    assert producer[dfl.input[0]].op_type != "DequantizeLinear"
    last = [n for n in graph.node if n.op_type == "Conv" and n.name.endswith(".2/Conv")]  # box/class outputs
    assert len(last) == 6 and all(n.input[1] in floats for n in last)  # fp32 weights, no QDQ pair
    meta = metadata(int8.onnx)
    assert meta["source_sha256"] == metadata(fp32.onnx)["source_sha256"] and meta["kind"] == "face-detector"
    assert "ranges of 8 photos of widerface/train/images at 320 px" in meta["quantization"]
    assert int8.agreement > 0.9 and int8.max_abs_diff < 0.2  # on 8 other WIDER photos
    # The file runs as detector weights and finds the same faces; a score may move by up to 0.1 (a face
    # at 0.44 in fp32 may fall under 0.4 in int8), so each side is matched against the other at 0.1 less.
    files = {"fp32": fp32.onnx, "int8": int8.onnx}
    nets = {name: {c: YoloFaceDetector(f, 320, conf=c) for c in (0.3, 0.4)} for name, f in files.items()}
    for photo in sorted((media / "dlib_faces").glob("*.jpg")):
        image = cv2.imread(str(photo))
        for sure, loose in (("fp32", "int8"), ("int8", "fp32")):
            a, b = nets[sure][0.4].detect(image), nets[loose][0.3].detect(image)
            assert len(a) >= 1 and (sv.box_iou_batch(a.xyxy, b.xyxy).max(1) > 0.8).mean() >= 0.9, photo.name


def test_onnx_detector_weights_are_checked(tmp_path: Path):
    with pytest.raises(WeightsError, match="not a face detector"):
        YoloFaceDetector(export_model(default_weights("emotion"), tmp_path).onnx)
    with pytest.raises(WeightsError, match="not found"):
        YoloFaceDetector(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="cannot load"):
        YoloFaceDetector(tmp_path / "junk.onnx")


def test_int8_needs_its_data_first(face_weights: Path, tmp_path: Path):
    from fer_yolo.cli import main

    with pytest.raises(ConfigError, match="emotion heads only"):
        quantize_emotion(export_model(face_weights, tmp_path), tmp_path)
    out = tmp_path / "onnx"
    args = ["export", "--int8", "--data", str(tmp_path / "none"), "--out", str(out)]
    assert main(args) == 2 and not out.exists()  # refused before anything is written
    (tmp_path / "empty").mkdir()  # a folder without train/val crops
    assert main(["export", "--int8", "--data", str(tmp_path / "empty"), "--out", str(out)]) == 2
    detector = ["export", "--int8", "--weights", str(face_weights), "--out", str(out)]
    assert main([*detector, "--images", str(tmp_path / "none")]) == 2  # no photos to calibrate on
    assert main([*detector, "--images", str(tmp_path / "empty")]) == 2
    exported = export_model(face_weights, tmp_path).onnx
    assert main(["export", "--weights", str(face_weights), str(exported), "--out", str(out)]) == 2
    assert main(["export", "--weights", str(face_weights), str(tmp_path / "typo.pt"), "--out", str(out)]) == 2
    (notes := tmp_path / "notes.txt").write_text("not weights")
    assert main(["export", "--weights", str(face_weights), str(notes), "--out", str(out)]) == 2
    torch.save({"conv.weight": torch.zeros(1)}, state := tmp_path / "state_dict.pt")  # neither kind
    assert main(["export", "--weights", str(face_weights), str(state), "--out", str(out)]) == 2
    assert not out.exists()
    with pytest.raises(WeightsError, match="already an ONNX file"):
        export_model(exported, out)


def test_metadata_of_a_file_rewritten_in_place_is_read_again(tmp_path: Path):
    from onnx import TensorProto, helper

    from fer_yolo.onnx_backend import onnx_metadata

    def write(kind: str) -> None:
        io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1]) for name in ("input", "output")]
        graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g", io[:1], io[1:])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        helper.set_model_props(model, {"kind": kind})
        onnx.save(model, path)

    path = tmp_path / "head.onnx"
    write("emotion")
    assert onnx_metadata(path)["kind"] == "emotion"
    onnx_metadata(path)["kind"] = "changed by a caller"  # callers get copies
    assert onnx_metadata(path)["kind"] == "emotion"
    write("face-detector")  # e.g. an export written again to the same path
    assert onnx_metadata(path)["kind"] == "face-detector"


def test_an_export_stopped_before_its_metadata_leaves_none(face_weights: Path, tmp_path: Path, monkeypatch):
    import fer_yolo.export as export

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_metadata", killed)
    with pytest.raises(KeyboardInterrupt):
        export.export_model(face_weights, tmp_path)
    assert list(tmp_path.iterdir()) == []  # not a file without metadata, which every loader would refuse
