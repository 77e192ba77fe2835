"""EmotionClassifier on real FER2013 faces with the shipped weights: backends, TTA, errors, averaging."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from fer_yolo.emotion.classifier import EmotionClassifier, load_emotion_model, save_emotion_weights
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.errors import ConfigError, WeightsError
from fer_yolo.utils.io import load_checkpoint, save_checkpoint
from fer_yolo.utils.paths import default_weights


@pytest.fixture(scope="module")
def faces(fer2013: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """10 PublicTest (validation) faces per emotion, as BGR crops, and their labels."""
    crops, labels = [], []
    for k, emotion in enumerate(EMOTIONS):
        for f in sorted((fer2013 / "test" / emotion).glob("PublicTest_*"))[:10]:
            crops.append(cv2.imread(str(f)))
            labels.append(k)
    return crops, np.array(labels)


@pytest.fixture(scope="module")
def torch_head() -> EmotionClassifier:
    return EmotionClassifier(default_weights("emotion"), backend="torch", device="cpu")


def test_shipped_head_recognises_real_faces(faces, torch_head: EmotionClassifier):
    crops, labels = faces
    probs = torch_head.predict_crops(crops)
    assert probs.shape == (70, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == labels).mean() >= 0.5  # chance is 1/7


def test_onnx_runtime_gives_the_pytorch_probabilities(faces, torch_head: EmotionClassifier):
    crops, _ = faces
    onnx = EmotionClassifier(default_weights("emotion"), backend="onnx", device="cpu")
    assert np.allclose(onnx.predict_crops(crops), torch_head.predict_crops(crops), atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_flip_tta_is_the_mean_of_each_face_and_its_mirror(faces, torch_head, backend: str):
    crops, _ = faces
    flip = EmotionClassifier(default_weights("emotion"), backend=backend, device="cpu", tta="flip")
    flip = flip.predict_crops(crops)
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    expected = (torch_head.predict_crops(crops) + torch_head.predict_crops(mirrored)) / 2
    assert np.allclose(flip, expected, atol=1e-4)
    assert np.abs(flip - torch_head.predict_crops(crops)).max() > 0.01  # the mirror does change some faces


def test_onnx_runtime_runs_the_shipped_int8_export_by_default(faces, torch_head, tmp_path: Path, monkeypatch):
    crops, labels = faces
    int8 = default_weights("emotion", onnx=True)
    assert int8.name.endswith("_int8.onnx") and int8.is_file(), "shipped int8 emotion head missing"
    default = EmotionClassifier(device="cpu")  # auto: ONNX Runtime on the CPU
    probs = default.predict_crops(crops)
    assert default.backend == "onnx" and default.weights == str(int8)  # what run reports record
    assert np.array_equal(probs, EmotionClassifier(int8, device="cpu").predict_crops(crops))
    fp32 = torch_head.predict_crops(crops)  # the .pt file, which PyTorch (CUDA, training) reads
    assert np.array_equal(EmotionClassifier(backend="torch", device="cpu").predict_crops(crops), fp32)
    assert not np.allclose(probs, fp32, atol=1e-3) and (probs.argmax(1) == fp32.argmax(1)).mean() >= 0.9
    assert abs((probs.argmax(1) == labels).mean() - (fp32.argmax(1) == labels).mean()) <= 0.05
    shipped = default_weights("emotion")
    (tmp_path / shipped.name).write_bytes(shipped.read_bytes())
    monkeypatch.setenv("FER_YOLO_WEIGHTS", str(tmp_path))  # a weights folder without the int8 export
    assert default_weights("emotion", onnx=True) == tmp_path / shipped.name
    fallback = EmotionClassifier(device="cpu")  # the .pt, exported to fp32 ONNX on the fly
    assert fallback.backend == "onnx" and np.allclose(fallback.predict_crops(crops), fp32, atol=1e-4)


def test_bad_settings_are_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="tta"):
        EmotionClassifier(tta="mirror")
    with pytest.raises(WeightsError, match="not found"):
        EmotionClassifier(tmp_path / "missing.pt")


def test_wrong_weight_files_get_errors_that_say_what_to_do(
    face_weights: Path, emotion_weights: Path, tmp_path, monkeypatch
):
    # a file holding an object torch refuses: the message says so on one line, naming it, with no advice to
    # load it unsafely (torch's own message suggests weights_only=False)
    torch.save({"state_dict": {}, "meta": argparse.Namespace(arch="resnet34")}, tmp_path / "objects.pt")
    with pytest.raises(WeightsError) as err:
        EmotionClassifier(tmp_path / "objects.pt", backend="torch")
    message = str(err.value)
    assert "holds Python objects (argparse.Namespace" in message and "never unpickles" in message
    assert "weights_only" not in message and "\x1b" not in message
    with pytest.raises(WeightsError) as err:  # the detector's .pt as a head (refused, or read and not a head,
        EmotionClassifier(face_weights, backend="torch")  # where ultralytics allowed its classes earlier)
    assert "weights_only" not in str(err.value) and "\x1b" not in str(err.value)
    damaged = {  # each: not refused objects, so not "holds Python objects"
        "truncated.pt": emotion_weights.read_bytes()[:1000],
        "random.pt": np.random.default_rng(0).bytes(2000),
        "page.pt": b"<html><body>404 Not Found</body></html>",
    }
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError, match="cannot load .* as a fer-yolo checkpoint") as err:
            EmotionClassifier(tmp_path / name, backend="torch")
        assert "holds Python objects" not in str(err.value) and "\x1b" not in str(err.value), name
    lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 42670000\n"
    (tmp_path / "pointer.pt").write_bytes(lfs)  # a clone without `git lfs pull`
    with pytest.raises(WeightsError) as err:
        EmotionClassifier(tmp_path / "pointer.pt", backend="torch")
    assert "git lfs pull" in err.value.hint
    # a relative path from another folder: the hint says where it was looked for and where the shipped file is
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError) as err:
        EmotionClassifier(Path("weights/emotion_mobilenetv2.pt"))
    assert f"under {tmp_path}" in err.value.hint and str(emotion_weights) in err.value.hint


def test_averaged_weights_are_the_mean_of_the_checkpoints(tmp_path: Path):
    shipped_path = default_weights("emotion").with_name("emotion_mobilenetv2.pt")  # the light head
    shipped = load_checkpoint(shipped_path)
    state = shipped["state_dict"]
    # An average of the shipped file with itself: the same weights, and a file that is itself an average.
    first_path = save_emotion_weights([shipped_path, shipped_path], tmp_path / "first.pt", note="first")
    first = load_checkpoint(first_path)
    tripled = {k: v.float() * 3 if v.is_floating_point() else v + 7 for k, v in state.items()}
    run_meta = {k: v for k, v in shipped["meta"].items() if k != "averaged"}  # one run's facts:
    run_meta |= {"epoch": 4, "val": {"accuracy": 0.5}}
    run_meta["preprocess"] = run_meta["preprocess"] | {"grey": True}  # a newer run says what older files mean
    save_checkpoint(tmp_path / "b.pt", {"state_dict": tripled, "meta": run_meta})
    out = save_emotion_weights([first_path, tmp_path / "b.pt"], tmp_path / "soup.pt", note="x")
    soup = load_checkpoint(out)
    for k, v in state.items():
        assert soup["state_dict"][k].dtype == v.dtype  # fp16 weights, int64 BatchNorm counters
        if v.is_floating_point():
            np.testing.assert_allclose(soup["state_dict"][k].float(), v.float() * 2, rtol=2e-3, atol=1e-3)
        else:
            assert torch.equal(soup["state_dict"][k], v)  # counters are taken from the first file
    meta = soup["meta"]
    assert "epoch" not in meta and "val" not in meta and meta["note"] == "x"  # not the first file's note
    assert "source" not in meta and meta["averaged"][0]["source"] == str(first_path)
    assert meta["averaged"][0]["note"] == "first"
    assert [a.get("epoch") for a in meta["averaged"]] == [None, 4]
    # The first file is itself an average: its sources stay listed under it, one level down.
    assert meta["averaged"][0]["averaged"] == first["meta"]["averaged"]
    assert [a["source"] for a in first["meta"]["averaged"]] == [str(shipped_path)] * 2
    assert "averaged" not in meta["averaged"][1]
    other = shipped["meta"] | {"preprocess": shipped["meta"]["preprocess"] | {"input_size": 64}}
    save_checkpoint(tmp_path / "c.pt", {"state_dict": tripled, "meta": other})
    wider = {k: torch.cat([v, v]) if k == "classifier.1.bias" else v for k, v in tripled.items()}
    save_checkpoint(tmp_path / "d.pt", {"state_dict": wider, "meta": shipped["meta"]})
    colour = shipped["meta"] | {"preprocess": shipped["meta"]["preprocess"] | {"grey": False}}
    save_checkpoint(tmp_path / "e.pt", {"state_dict": tripled, "meta": colour})
    for bad, why in (
        ("c.pt", "preprocess differ"),
        ("d.pt", "tensors differ"),
        ("e.pt", "preprocess differ"),
    ):
        with pytest.raises(WeightsError, match=why):
            save_emotion_weights([shipped_path, tmp_path / bad], tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="no emotion checkpoints"):
        save_emotion_weights([], tmp_path / "bad.pt")


@pytest.fixture(scope="module")
def exported(fer2013: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The shipped head exported as fp32 and as int8 ONNX files."""
    from fer_yolo.export import export_model, quantize_emotion

    fp32 = export_model(default_weights("emotion"), tmp_path_factory.mktemp("onnx"))
    return fp32.onnx, quantize_emotion(fp32, fer2013, n=64).onnx


def test_exported_heads_run_as_weights(faces, torch_head: EmotionClassifier, exported):
    crops, labels = faces
    fp32, int8 = (EmotionClassifier(path, backend="torch", device="cpu") for path in exported)
    assert fp32.backend == int8.backend == "onnx"  # an .onnx head runs as it is, whatever the backend asked
    expected = torch_head.predict_crops(crops)
    assert np.allclose(fp32.predict_crops(crops), expected, atol=1e-4)
    quantized = int8.predict_crops(crops)
    assert not np.allclose(quantized, expected, atol=1e-3)  # really the int8 file
    assert (quantized.argmax(1) == expected.argmax(1)).mean() >= 0.9
    assert abs((quantized.argmax(1) == labels).mean() - (expected.argmax(1) == labels).mean()) <= 0.05
    model, pre = load_emotion_model(exported[1])  # evaluation and distillation read it the same way
    assert pre == int8.preprocess == torch_head.preprocess  # the checkpoint's preprocessing, from the file
    x = pre.normalize(torch.from_numpy(pre.prepare_crops(crops)))
    assert np.allclose(model(x).softmax(1).numpy(), quantized, atol=1e-5)


def test_onnx_files_that_are_not_emotion_heads_are_refused(face_weights: Path, exported, tmp_path: Path):
    from fer_yolo.export import export_model

    detector = export_model(face_weights, tmp_path).onnx
    with pytest.raises(WeightsError, match="not an emotion head"):
        EmotionClassifier(detector)
    proto = onnx.load(str(exported[0]))
    for prop in proto.metadata_props:
        prop.value = "{not json" if prop.key == "preprocess" else prop.value
    onnx.save(proto, str(tmp_path / "bad_meta.onnx"))
    with pytest.raises(WeightsError, match="unreadable metadata"):
        load_emotion_model(tmp_path / "bad_meta.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="cannot load"):
        load_emotion_model(tmp_path / "junk.onnx")
    with pytest.raises(WeightsError, match="not found"):
        load_emotion_model(tmp_path / "missing.onnx")


def test_an_int8_export_of_another_pt_is_not_run_by_default(exported, tmp_path: Path, monkeypatch, caplog):
    shipped = default_weights("emotion")
    recorded = {p.key: p.value for p in onnx.load(str(exported[1])).metadata_props}["source_sha256"]
    assert recorded == hashlib.sha256(shipped.read_bytes()).hexdigest()  # the int8 export of the shipped .pt
    for folder, pt in (("current", shipped), ("stale", shipped.with_name("emotion_mobilenetv2.pt"))):
        (tmp_path / folder).mkdir()  # a weights folder: the shipped .pt (or a newly shipped one) + the export
        (tmp_path / folder / shipped.name).write_bytes(pt.read_bytes())
        (tmp_path / folder / default_weights("emotion", onnx=True).name).write_bytes(exported[1].read_bytes())
    monkeypatch.setenv("FER_YOLO_WEIGHTS", str(tmp_path / "current"))
    assert EmotionClassifier(device="cpu").weights == str(default_weights("emotion", onnx=True))
    monkeypatch.setenv("FER_YOLO_WEIGHTS", str(tmp_path / "stale"))
    head = EmotionClassifier(device="cpu")  # the int8 file records the sha256 of another .pt
    assert head.weights == str(tmp_path / "stale" / shipped.name) and head.preprocess.input_size == 96
    assert "is the export of another" in caplog.text


@pytest.mark.parametrize("isa, warned", [("AVX2", True), ("AVX512", True), ("AVX512-VNNI", False)])
def test_int8_files_with_8_bit_weights_are_flagged_on_cpus_that_saturate(
    isa, warned, tmp_path: Path, monkeypatch, caplog
):
    shipped = default_weights("emotion", onnx=True)
    model = onnx.load(str(shipped))
    (quantization,) = [p for p in model.metadata_props if p.key == "quantization"]
    assert "7-bit weights" in quantization.value  # the shipped file adds products in 16 bits without overflow
    quantization.value = quantization.value.replace("7-bit weights, ", "")  # as files exported before it
    onnx.save(model, str(tmp_path / "old_int8.onnx"))
    monkeypatch.setattr("fer_yolo.onnx_backend.int8_isa", lambda: isa)
    EmotionClassifier(shipped, device="cpu")
    assert "8-bit weights" not in caplog.text
    EmotionClassifier(tmp_path / "old_int8.onnx", device="cpu")
    assert ("8-bit weights" in caplog.text) == warned
