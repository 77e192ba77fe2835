"""Emotion evaluation: metrics on a hand-built model and dataset, confusion plot, checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fer_yolo.data.crops import CropSet
from fer_yolo.emotion.classifier import load_emotion_model
from fer_yolo.emotion.inference import predict_logits
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.models import build_model
from fer_yolo.emotion.preprocess import Preprocess, tta_views
from fer_yolo.errors import DatasetError, WeightsError
from fer_yolo.evaluation.emotion_eval import (
    evaluate_emotion,
    evaluate_emotion_models,
    load_ferplus,
    plot_confusion,
)

#: Raw pixels in [0, 1]: a crop of constant grey 10 * k reads as class k to PixelClassifier.
RAW = Preprocess(input_size=4, in_chans=1, mean=(0.0,), std=(1.0,))
Y_TRUE = [0, 0, 1, 1, 2, 3]
Y_PRED = [0, 1, 1, 1, 2, 0]


class PixelClassifier(nn.Module):
    """Predicts class round(mean pixel / 10) as a one-hot logit vector."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = torch.round(x.mean(dim=(1, 2, 3)) * 255 / 10).long()
        return nn.functional.one_hot(cls, len(EMOTIONS)).float()


def crops(pred: list[int], labels: list[int]) -> CropSet:
    images = np.stack([np.full((4, 4, 1), 10 * p, np.uint8) for p in pred])
    return CropSet(images, np.asarray(labels, np.int64), [f"{i}.png" for i in range(len(pred))])


def check_hand_computed(report: dict) -> None:
    # Per class: 0: P 1/2 R 1/2 F1 1/2; 1: P 2/3 R 1 F1 0.8; 2: F1 1; 3: F1 0 -> macro-F1 2.3 / 4.
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["macro_f1"] == pytest.approx(0.575)
    assert report["per_class"]["disgust"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["angry"]["recall"] == pytest.approx(0.5)
    assert report["confusion_matrix"][3][0] == 1


def test_evaluate_crop_set_matches_hand_computed() -> None:
    result = evaluate_emotion(PixelClassifier(), RAW, crops(Y_PRED, Y_TRUE), batch=4)
    check_hand_computed(result["test"])
    for tta in ("flip", "multicrop"):
        result = evaluate_emotion(PixelClassifier(), RAW, {"val": crops(Y_PRED, Y_TRUE)}, tta=tta)
        check_hand_computed(result["val"])  # constant crops: mirror images and crops change nothing


class LeftRightClassifier(nn.Module):
    """Logit 0 = 2 x the mean of the left half, logit 1 = 2 x the mean of the right half, the rest 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        left, right = x[..., :half].mean(dim=(1, 2, 3)), x[..., half:].mean(dim=(1, 2, 3))
        return torch.nn.functional.pad(torch.stack([left, right], 1) * 2, (0, len(EMOTIONS) - 2))


def test_flip_tta_averages_the_softmax_of_the_mirror_pair() -> None:
    image = np.zeros((1, 4, 4, 1), np.uint8)
    image[..., :2, :] = 255  # bright left half: logits (2, 0, 0, ...), its mirror (0, 2, 0, ...)
    e2, cpu = np.exp(2.0), torch.device("cpu")
    no_tta = np.exp(predict_logits(LeftRightClassifier(), image, RAW, cpu))
    assert no_tta[0, 0] == pytest.approx(e2)
    flip = np.exp(predict_logits(LeftRightClassifier(), image, RAW, cpu, tta="flip"))
    mean_softmax = np.array([(e2 + 1) / 2, (e2 + 1) / 2, 1, 1, 1, 1, 1]) / (e2 + 6)
    assert flip[0] == pytest.approx(mean_softmax)  # mean of the two softmaxes, not of the logits
    big, pre16 = np.zeros((1, 16, 16, 1), np.uint8), Preprocess(16, 1, (0.0,), (1.0,))
    big[..., :8, :] = 255  # 16 px: the 18 px zoom of multicrop moves the crops' edges off the midline
    multicrop = np.exp(predict_logits(LeftRightClassifier(), big, pre16, cpu, tta="multicrop"))
    assert multicrop[0, 0] == pytest.approx(multicrop[0, 1])  # every crop comes with its mirror
    views = tta_views(pre16.normalize(torch.from_numpy(big)), "multicrop")
    softmaxes = [LeftRightClassifier()(v).softmax(1)[0].numpy() for v in views]
    assert multicrop[0] == pytest.approx(np.mean(softmaxes, axis=0))  # all 12 views
    assert multicrop[0] != pytest.approx(mean_softmax, abs=1e-3)  # not only the mirror pair


def test_a_grey_trained_head_reads_colour_crops_grey_as_the_pipeline_does() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, len(EMOTIONS), 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    colour = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), np.uint8)  # RGB crops
    grey = np.stack([np.repeat(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[..., None], 3, 2) for c in colour])
    pre = Preprocess(16, 3, (0.5,) * 3, (0.5,) * 3, source_size=8)  # crops read at 16 px, no sharper than 8
    cpu = torch.device("cpu")
    assert np.allclose(predict_logits(model, colour, pre, cpu), predict_logits(model, grey, pre, cpu))
    colour_head = Preprocess(16, 3, (0.5,) * 3, (0.5,) * 3, grey=False)
    assert not np.allclose(
        predict_logits(model, colour, colour_head, cpu), predict_logits(model, grey, pre, cpu)
    )


def test_evaluate_folder_splits_fer2013_test_by_prefix(tmp_path: Path) -> None:
    """FER2013 layout: test/ mixes PrivateTest_* (split test) and PublicTest_* (split val)."""
    for i, (p, t) in enumerate(zip(Y_PRED, Y_TRUE)):
        folder = tmp_path / "test" / EMOTIONS[t]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"PrivateTest_{i}.png"), np.full((4, 4), 10 * p, np.uint8))
        cv2.imwrite(str(folder / f"PublicTest_{i}.png"), np.full((4, 4), 10 * t, np.uint8))  # all right
    result = evaluate_emotion(PixelClassifier(), RAW, tmp_path)
    check_hand_computed(result["test"])
    assert result["val"]["n"] == 6 and result["val"]["accuracy"] == 1.0


def test_plot_confusion_draws_each_cell_by_its_share(tmp_path: Path) -> None:
    """The cells are coloured by the share of their true class: 3 full cells here ((1,1), (2,2), (3,0)),
    7 in a perfect matrix, 2 half cells ((0,0), (0,1)) here and none there (the colour bar has both)."""
    import matplotlib

    def pixels(image: np.ndarray, share: float) -> int:
        bgr = (np.array(matplotlib.colormaps["Blues"](share)[2::-1]) * 255).round()
        return int((np.abs(image.astype(int) - bgr).max(axis=2) <= 2).sum())

    drawn = {}
    for name, (pred, true) in {"mixed": (Y_PRED, Y_TRUE), "perfect": (range(7), range(7))}.items():
        report = evaluate_emotion(PixelClassifier(), RAW, crops(list(pred), list(true)))["test"]
        out = tmp_path / "plots" / f"{name}.png"
        plot_confusion(report, out, title="test")
        drawn[name] = cv2.imread(str(out))
        assert drawn[name].shape[0] > 500 and drawn[name].shape[1] > 600
    assert sorted(p.name for p in out.parent.iterdir()) == ["mixed.png", "perfect.png"]  # no temporary file
    full = {name: pixels(image, 1.0) for name, image in drawn.items()}
    assert 1.8 < full["perfect"] / full["mixed"] < 2.5  # 7 full cells against 3 (+ the colour bar's top)
    half = {name: pixels(image, 0.5) for name, image in drawn.items()}
    assert half["mixed"] > 5 * half["perfect"] > 0  # two half cells against the colour bar's middle


def test_load_emotion_model_round_trips_fp16_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", len(EMOTIONS), 1, "s2").eval()
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    pre = Preprocess(48, 1, (0.5,), (0.5,))
    meta = {"arch": "resnet18", "stem": "s2", "class_names": list(EMOTIONS), "preprocess": pre.to_dict()}
    torch.save({"state_dict": half, "meta": meta}, tmp_path / "best.pt")

    loaded, loaded_pre = load_emotion_model(tmp_path / "best.pt")
    assert loaded_pre == pre and not loaded.training
    assert all(v.dtype != torch.float16 for v in loaded.state_dict().values())
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_load_emotion_model_rejects_bad_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="weights file not found"):
        load_emotion_model(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "no_meta.pt")
    with pytest.raises(WeightsError, match="no state_dict/meta"):
        load_emotion_model(tmp_path / "no_meta.pt")


def test_ferplus_labels_cover_each_fer2013_split_with_its_own_images(fer2013: Path, ferplus: Path) -> None:
    sets = load_ferplus(fer2013, ferplus, ["val", "test"], RAW)
    assert list(sets) == ["ferplus_val", "ferplus_test"]
    for split, prefix in (("val", "PublicTest_"), ("test", "PrivateTest_")):
        fp = sets[f"ferplus_{split}"]
        assert all(Path(p).name.startswith(prefix) for p in fp.paths)
        assert 3000 < len(fp.labels) < 3589  # unknown / not-a-face / no-majority images are left out
        assert fp.images.shape[1:] == (4, 4, 1)
        # The crowd relabels a real share of the images: FER2013's label is the folder name.
        same = np.mean([EMOTIONS.index(Path(p).parent.name) == y for p, y in zip(fp.paths, fp.labels)])
        assert 0.6 < same < 0.95


def test_ferplus_needs_the_fer2013_image_files(fer2013: Path, ferplus: Path, tmp_path: Path) -> None:
    partial = tmp_path / "fer2013"  # PublicTest images with most of them missing: not FER2013's folders
    for f in sorted((fer2013 / "test").glob("*/PublicTest_*.jpg"))[:1000]:
        (partial / "test" / f.parent.name).mkdir(parents=True, exist_ok=True)
        (partial / "test" / f.parent.name / f.name).write_bytes(f.read_bytes())
    with pytest.raises(DatasetError, match="not readable") as error:
        load_ferplus(partial, ferplus, ["val"], RAW)
    assert "--data" in error.value.hint
    pointers = tmp_path / "pointers"  # every file there, none readable (Git LFS pointers not pulled)
    for f in (fer2013 / "test").glob("*/PublicTest_*.jpg"):
        (pointers / "test" / f.parent.name).mkdir(parents=True, exist_ok=True)
        (pointers / "test" / f.parent.name / f.name).write_text(
            "version https://git-lfs.github.com/spec/v1\n"
        )
    with pytest.raises(DatasetError, match=r"(\d+) of the \1 FER2013 images .* not readable") as error:
        load_ferplus(pointers, ferplus, ["val"], RAW)
    assert "--data" in error.value.hint


def test_a_bad_weights_file_fails_before_any_model_is_evaluated(emotion_weights: Path, tmp_path: Path):
    for i, (p, t) in enumerate(zip(Y_PRED, Y_TRUE)):
        folder = tmp_path / "data" / "test" / EMOTIONS[t]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"PrivateTest_{i}.png"), np.full((48, 48), 10 * p, np.uint8))
    typo = tmp_path / "emotion_resnet43.pt"
    with pytest.raises(WeightsError, match="emotion_resnet43"):
        evaluate_emotion_models([emotion_weights, typo], tmp_path / "data", tmp_path / "out", splits=["test"])
    assert not (tmp_path / "out").exists()  # the first file was not evaluated only to be lost


def test_eval_emotion_without_weights_scores_the_head_the_pipeline_runs(fer2013: Path, tmp_path: Path):
    import json
    import shutil

    from fer_yolo.cli import main
    from fer_yolo.onnx_backend import shipped_weights

    for emotion in EMOTIONS:  # 2 real PrivateTest faces per emotion
        (tmp_path / "data/test" / emotion).mkdir(parents=True)
        for f in sorted((fer2013 / "test" / emotion).glob("PrivateTest_*"))[:2]:
            shutil.copy(f, tmp_path / "data/test" / emotion / f.name)
    args = [
        "eval",
        "emotion",
        "--data",
        str(tmp_path / "data"),
        "--splits",
        "test",
        "--device",  # auto would run the .pt on a CUDA machine
        "cpu",
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    results = json.loads((tmp_path / "out/results.json").read_text())
    head = shipped_weights("emotion", onnx=True)  # on the CPU: the shipped int8 export
    assert list(results) == [head.stem] and results[head.stem]["weights"] == str(head)
    assert results[head.stem]["splits"]["test"]["n"] == 14
