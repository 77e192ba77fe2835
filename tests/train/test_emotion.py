"""Emotion training on a small real FER2013 subset: the loss falls, runs resume, weights load safely."""

from __future__ import annotations

import csv
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import fer_yolo.train.emotion as emotion_train
from fer_yolo.config import load_config
from fer_yolo.data import face_crops
from fer_yolo.data.crops import load_crops
from fer_yolo.emotion.models import build_model
from fer_yolo.errors import ConfigError, DatasetError, WeightsError
from fer_yolo.train.emotion import (
    EmotionTrainConfig,
    OnlineTeachers,
    class_weights,
    load_init,
    mix_votes,
    soft_cross_entropy,
    teacher_probs,
    train_emotion,
)
from fer_yolo.utils.io import load_checkpoint, save_checkpoint
from fer_yolo.utils.paths import default_weights

#: The shipped light head: 96 px colour input with ImageNet statistics, unlike the 48 px grey runs here.
MOBILENET = default_weights("emotion").with_name("emotion_mobilenetv2.pt")
#: The shipped grey 48 px ResNet18 (the default head until the ResNet34).
RESNET18 = default_weights("emotion").with_name("emotion_resnet18.pt")


@pytest.fixture
def small_fer(fer2013: Path, tmp_path: Path) -> Path:
    """48 train and 16 validation faces of three FER2013 classes."""
    root = tmp_path / "fer"
    for emotion in ("happy", "surprise", "angry"):
        for split, prefix, n in [("train", "Training_", 48), ("test", "PublicTest_", 16)]:
            (root / split / emotion).mkdir(parents=True)
            for f in sorted((fer2013 / split / emotion).glob(f"{prefix}*"))[:n]:
                shutil.copy(f, root / split / emotion)
    return root


def config(data: Path, project: Path, **over) -> EmotionTrainConfig:
    no_aug = dict.fromkeys(load_config()["train_emotion"]["augment"], 0.0)
    section = {
        "data": str(data),
        "model": "resnet18",
        "epochs": 4,
        "batch": 24,
        "lr": 0.02,
        "warmup_epochs": 0.5,
        "label_smoothing": 0.0,
        "ema_decay": 0.9,
        "device": "cpu",
        "project": str(project),
        "augment": no_aug,
    } | over
    return EmotionTrainConfig.from_dict(load_config(overrides={"train_emotion": section})["train_emotion"])


def rows(run: Path) -> list[dict]:
    with (run / "results.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_a_run_folder(small_fer: Path, tmp_path: Path):
    cfg = config(small_fer, tmp_path / "runs")
    run = train_emotion(cfg)
    losses = [float(r["train_loss"]) for r in rows(run)]
    assert len(losses) == 4 and losses[-1] < losses[0] * 0.8
    assert (run / "curves.png").stat().st_size > 0 and (run / "args.yaml").is_file()
    best = load_checkpoint(run / "weights/best.pt")  # weights_only=True
    assert best["meta"]["arch"] == "resnet18" and best["meta"]["preprocess"]["input_size"] == 48
    model = build_model("resnet18", 7, 1, best["meta"]["stem"])
    model.load_state_dict(best["state_dict"])
    val = load_crops(small_fer, "val")
    pre = emotion_train.Preprocess.from_dict(best["meta"]["preprocess"])
    # validated as the trainer validates: bf16 autocast on CPUs that have it, where fp32 may flip an image
    logits = emotion_train.predict_logits(model, val.images, pre, torch.device("cpu"), amp=cfg.amp)
    assert logits.shape == (48, 7)
    acc = (logits.argmax(1) == val.labels).mean()
    assert acc == pytest.approx(max(float(r["val_acc"]) for r in rows(run)), abs=1e-5)  # best.pt = best row
    assert acc > 1 / 3  # better than chance on 3 classes


def test_runs_record_the_colour_and_size_of_their_faces(small_fer: Path, tmp_path: Path):
    for name, tint in (("grey", False), ("colour", True)):
        data = tmp_path / name
        shutil.copytree(small_fer, data)
        for f in data.rglob("*.jpg") if tint else []:  # FER2013 faces with a blue cast, stored at 72 px
            image = cv2.resize(cv2.imread(str(f)), (72, 72), interpolation=cv2.INTER_CUBIC)
            image[..., 1:] //= 2
            cv2.imwrite(str(f), image)
        run = train_emotion(config(data, tmp_path / "runs", epochs=1, in_chans=3, name=name))
        meta = load_checkpoint(run / "weights/best.pt")["meta"]["preprocess"]
        assert meta["grey"] is not tint  # the pipeline turns real faces grey only for a grey-trained head
        assert meta["source_size"] == (72 if tint else 48)  # and no sharper than the training faces


@pytest.mark.slow
def test_interrupted_training_resumes_as_if_never_stopped(small_fer: Path, tmp_path: Path, monkeypatch):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)  # started with relative paths, resumed from another directory
    cfg = config(
        small_fer.relative_to(tmp_path),
        Path("runs"),
        epochs=2,
        augment={"flip": 0.5, "erase": 0.5, "mix": 0.5},
    )
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(emotion_train, "predict_logits", stop)  # Ctrl-C before the first checkpoint
        train_emotion(cfg)
    monkeypatch.chdir(small_fer / "train")
    run = tmp_path / "runs/train"
    with pytest.raises(WeightsError, match="nothing to resume"):
        train_emotion(cfg, resume=run / "weights/last.pt")
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(emotion_train, "plot_curves", stop)  # Ctrl-C right after epoch 1 is saved
        train_emotion(cfg, resume=run)  # no checkpoint yet: starts again from args.yaml
    first = load_checkpoint(run / "weights/last.pt")
    assert first["epoch"] == 1
    with (run / "results.csv").open("a") as f:  # epoch 2 logged, then killed before its checkpoint
        f.write("2,9,9,0,0,0,0\n")
    with pytest.raises(WeightsError, match="not a training checkpoint"):
        train_emotion(cfg, resume=run / "weights/best.pt")
    train_emotion(cfg, resume=run)
    assert [int(r["epoch"]) for r in rows(run)] == [1, 2] and rows(run)[1]["train_loss"] != "9"
    assert "resuming at epoch 2" in (run / "train.log").read_text()
    resumed = load_checkpoint(run / "weights/last.pt")
    assert resumed["epoch"] == 2 and resumed["step"] == 2 * first["step"]
    early = resumed | {"epoch": 1, "stale": cfg.patience}  # as a run that stopped early at epoch 1 leaves it
    save_checkpoint(run / "weights/last.pt", early)
    before = (run / "results.csv").read_text()
    assert train_emotion(cfg, resume=run) == run  # a finished run is left as it is
    assert (run / "results.csv").read_text() == before and load_checkpoint(run / "weights/last.pt")[
        "epoch"
    ] == 1

    monkeypatch.chdir(tmp_path)
    straight_run = train_emotion(replace(cfg, name="straight"))
    straight = load_checkpoint(straight_run / "weights/last.pt")
    for part in ("model", "ema"):  # same shuffles and augmentations: the same weights and EMA
        for k, v in straight[part].items():
            assert torch.allclose(resumed[part][k].float(), v.float(), atol=1e-5), f"{part}.{k}"
    for key in ("train_loss", "val_loss", "val_acc"):  # the EMA is what is validated
        assert float(rows(run)[1][key]) == pytest.approx(float(rows(straight_run)[1][key]), abs=1e-4), key


def test_class_weights_average_one_over_samples():
    counts = np.array([100, 25, 400, 100, 100, 100, 100])
    w = class_weights(counts, 0.5).numpy()
    assert (w * counts).sum() / counts.sum() == pytest.approx(1.0)
    assert w[1] / w[2] == pytest.approx(4.0)  # (25 / 400) ** -0.5


def test_soft_cross_entropy_matches_hand_value():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    weight = torch.tensor([1.0, 3.0])
    # row 0: -log 0.5 = 0.6931, weight 1; row 1: 0.5*(-log s0) + 0.5*(-log s1) = 1.1269, weight 2
    expected = (0.693147 * 1 + 1.126928 * 2) / 3
    assert float(soft_cross_entropy(logits, target, weight)) == pytest.approx(expected, abs=1e-5)


def test_ferplus_votes_blend_into_the_fer2013_target(fer2013: Path, ferplus: Path, tmp_path: Path):
    # fer0000000.png = train/angry/Training_1426440.jpg; its 10 FER+ votes: neutral 4, anger 3,
    # disgust 2, sadness 1. A copy under a name FER+ does not know keeps its one-hot target.
    (tmp_path / "train/angry").mkdir(parents=True)
    (tmp_path / "train/happy").mkdir(parents=True)
    src = fer2013 / "train/angry/Training_1426440.jpg"
    shutil.copy(src, tmp_path / "train/angry")
    shutil.copy(src, tmp_path / "train/happy/Training_unknown.jpg")
    crops = load_crops(tmp_path, "train")
    onehot = torch.nn.functional.one_hot(torch.from_numpy(crops.labels), 7).float()
    mixed = mix_votes(onehot, crops, str(tmp_path), str(ferplus), 0.3)
    # angry, disgust, fear, happy, sad, surprise, neutral
    expected_angry = [0.7 + 0.3 * 0.3, 0.3 * 0.2, 0, 0, 0.3 * 0.1, 0, 0.3 * 0.4]
    assert mixed[0].tolist() == pytest.approx(expected_angry)
    assert mixed[1].tolist() == onehot[1].tolist()


def test_ferplus_mixing_refuses_a_dataset_it_has_no_votes_for(fer2013: Path, ferplus: Path, tmp_path: Path):
    (tmp_path / "train/happy").mkdir(parents=True)
    shutil.copy(fer2013 / "train/angry/Training_1426440.jpg", tmp_path / "train/happy/x.jpg")
    crops = load_crops(tmp_path, "train")
    with pytest.raises(DatasetError, match="FER\\+ votes"):
        mix_votes(torch.zeros(1, 7), crops, str(tmp_path), str(ferplus), 0.3)


def test_init_weights_must_match_the_runs_model_and_input(tmp_path: Path):
    shipped = str(MOBILENET)
    imagenet = "~/.cache/fer-yolo/assets/mobilenet_v2-b0353104.pth"
    good = config(tmp_path, tmp_path, model="mobilenet_v2", input_size=96, in_chans=3, imagenet=imagenet)
    model = build_model("mobilenet_v2", 7, 3)
    load_init(model, EmotionTrainConfig.from_dict(asdict(good) | {"init": shipped}))
    head = load_checkpoint(shipped)["state_dict"]["classifier.1.weight"]
    assert torch.equal(model.classifier[1].weight.half(), head)
    load_init(model, EmotionTrainConfig.from_dict(asdict(good) | {"init": shipped, "input_size": 128}))
    for wrong in ({"imagenet": ""}, {"model": "resnet18", "in_chans": 3}):
        cfg = EmotionTrainConfig.from_dict(asdict(good) | {"init": shipped} | wrong)
        with pytest.raises(ConfigError, match="as the weights were trained"):
            load_init(model, cfg)


def test_teachers_read_the_training_faces_at_their_own_input(small_fer: Path, tmp_path: Path):
    shipped = str(MOBILENET)
    data = emotion_train.stored_set(config(small_fer, tmp_path / "runs"))  # the student's crops: 48 px grey
    probs = teacher_probs([shipped, shipped], data.teacher_view, data.labels, torch.device("cpu"), amp=False)
    probs = probs.numpy()
    model, pre = emotion_train.load_emotion_model(shipped)
    own = load_crops(small_fer, "train", pre.input_size, pre.in_chans)  # 96 px colour, read again
    flip = np.exp(emotion_train.predict_logits(model, own.images, pre, torch.device("cpu"), tta="flip"))
    assert probs.shape == (143, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)  # 1 leak removed
    nearest = np.abs(probs[:, None] - flip[None]).max(2).min(1)
    assert nearest.max() < 1e-5  # two copies of one teacher: its own mirror-TTA softmax on each face
    assert (probs.argmax(1) == data.labels).mean() > 0.6  # happy, surprise, angry: a real teacher


@pytest.mark.slow
def test_distillation_run_blends_the_teachers_into_the_targets(small_fer: Path, tmp_path: Path):
    shipped = str(MOBILENET)
    cfg = config(small_fer, tmp_path / "runs", epochs=2, teachers=[shipped], teacher_weight=0.5)
    run = train_emotion(replace(cfg, epochs=1))
    assert f"teacher {shipped} agrees with" in (run / "train.log").read_text()
    cached = load_checkpoint(run / "teacher_probs.pt")  # computed once per run: --resume keeps the targets
    assert cached["probs"].shape == (143, 7) and cached["teachers"] == [shipped]  # 1 leak removed
    state = load_checkpoint(run / "weights/last.pt")
    state["config"]["epochs"] = 2
    emotion_train.save_checkpoint(run / "weights/last.pt", state)
    train_emotion(cfg, resume=run)
    assert (run / "train.log").read_text().count("agrees with") == 1  # not recomputed on resume
    min((small_fer / "train/happy").iterdir()).unlink()  # the training images changed before a resume
    state = load_checkpoint(run / "weights/last.pt")
    state["config"]["epochs"] = 3
    emotion_train.save_checkpoint(run / "weights/last.pt", state)
    train_emotion(replace(cfg, epochs=3), resume=run)
    log = (run / "train.log").read_text()
    assert "for other teachers or training images" in log and log.count("agrees with") == 2
    assert load_checkpoint(run / "teacher_probs.pt")["probs"].shape == (142, 7)  # one row per image again


def test_cached_teacher_targets_are_kept_only_for_their_teachers_and_training_set():
    probs, labels = torch.full((3, 7), 1 / 7), torch.tensor([3, 5, 0])
    same = emotion_train._same_training_set
    assert same({"probs": probs, "teachers": ["a.pt"], "labels": labels}, ["a.pt"], labels)
    assert same({"probs": probs, "teachers": ["a.pt"]}, ["a.pt"], labels)  # cached before labels were kept
    assert not same({"probs": probs, "teachers": ["a.pt"], "labels": labels}, ["a.pt"], labels.flip(0))
    assert not same({"probs": probs, "teachers": ["a.pt"], "labels": labels}, ["b.pt"], labels)
    assert not same({"probs": probs[:2], "teachers": ["a.pt"]}, ["a.pt"], labels)


def test_online_teachers_read_each_batch_at_their_own_input(small_fer: Path):
    shipped = str(MOBILENET)
    model, pre = emotion_train.load_emotion_model(shipped)
    own = load_crops(small_fer, "train", pre.input_size, pre.in_chans)
    logits = emotion_train.predict_logits(model, own.images, pre, torch.device("cpu"))
    plain = torch.from_numpy(logits).softmax(1).numpy()
    teachers = OnlineTeachers([shipped, shipped], torch.device("cpu"), amp=False)
    grey48 = torch.from_numpy(load_crops(small_fer, "train").images).permute(0, 3, 1, 2).float() / 255
    probs = teachers(grey48).numpy()  # a 48 px grey batch, as a 48 px student sees it
    assert probs.shape == (144, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == plain.argmax(1)).mean() > 0.95  # resized on the fly, not read again: close
    assert np.abs(probs - plain).max(1).mean() < 0.01  # (measured 0.004)
    flipped = teachers(grey48.flip(3)).numpy()  # the view the student gets, not the clean image
    assert np.abs(flipped - probs).max(1).mean() > 0.03  # (measured 0.05)
    tinted = grey48.expand(-1, 3, -1, -1) * torch.tensor([1.3, 1.0, 0.4]).view(1, 3, 1, 1)  # colour faces
    luma = (tinted * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert np.allclose(teachers(tinted).numpy(), teachers(luma).numpy(), atol=1e-5)  # a grey head sees grey


@pytest.mark.slow
def test_online_distillation_run_resumes_without_cached_targets(small_fer: Path, tmp_path: Path, monkeypatch):
    shipped = str(MOBILENET)
    cfg = config(small_fer, tmp_path / "runs", epochs=2, teachers=[shipped], teacher_mode="online")
    calls = []
    call = OnlineTeachers.__call__
    monkeypatch.setattr(OnlineTeachers, "__call__", lambda self, x: calls.append(len(x)) or call(self, x))
    run = train_emotion(replace(cfg, epochs=1))
    assert calls == [24] * 5  # every batch of the epoch (143 crops // 24) goes through the teachers
    assert not (run / "teacher_probs.pt").exists() and "agrees with" not in (run / "train.log").read_text()
    state = load_checkpoint(run / "weights/last.pt")
    assert state["config"]["teacher_mode"] == "online"
    state["config"]["epochs"] = 2
    emotion_train.save_checkpoint(run / "weights/last.pt", state)
    train_emotion(cfg, resume=run)
    assert [int(r["epoch"]) for r in rows(run)] == [1, 2]


def test_bad_teacher_settings_fail_before_any_data_is_read(tmp_path: Path):
    missing = tmp_path / "no-data"  # never read: the checks come first
    with pytest.raises(WeightsError, match="teacher weights not found"):
        train_emotion(config(missing, tmp_path / "runs", teachers=[str(tmp_path / "none.pt")]))
    shipped = str(MOBILENET)
    for bad in ({"teacher_weight": 1.5}, {"ferplus_weight": -0.1}):
        with pytest.raises(ConfigError, match="not a share"):
            train_emotion(config(missing, tmp_path / "runs", teachers=[shipped], **bad))
    with pytest.raises(ConfigError, match="not a path"):
        train_emotion(config(missing, tmp_path / "runs", teachers=[shipped, 3]))
    with pytest.raises(ConfigError, match="unknown teacher_mode"):
        train_emotion(config(missing, tmp_path / "runs", teachers=[shipped], teacher_mode="live"))


def test_weights_for_other_classes_are_refused(tmp_path: Path):
    ckpt = load_checkpoint(MOBILENET)
    ckpt["meta"]["class_names"] = list(reversed(ckpt["meta"]["class_names"]))
    emotion_train.save_checkpoint(tmp_path / "reversed.pt", ckpt)
    with pytest.raises(WeightsError, match="predicts"):
        emotion_train.load_emotion_model(tmp_path / "reversed.pt")


@pytest.fixture
def small_wild(small_fer: Path, rafdb: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A small RAF-DB copy (30 colour faces of the same three classes) and a list holding 6 of them out."""
    root = tmp_path / "raf"
    listed = []
    for emotion in ("happy", "surprise", "angry"):
        (root / "train" / emotion).mkdir(parents=True)
        for k, f in enumerate(sorted((rafdb / "train" / emotion).glob("*.jpg"))[:10]):
            shutil.copy(f, root / "train" / emotion)
            if k < 2:
                listed.append(f"train/{emotion}/{f.name}")
    (tmp_path / "val.txt").write_text("# held out\n" + "\n".join(listed) + "\n")
    return root, tmp_path / "val.txt"


def test_offline_teachers_read_detector_faces_as_the_pipeline_cuts_them(
    small_fer: Path, small_wild: tuple[Path, Path], tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("FER_YOLO_CACHE", str(tmp_path / "cache"))  # the detector pass runs on these images
    raf, val_list = small_wild
    cfg = config(
        small_fer, tmp_path / "runs", crops="detector", extra_data=[str(raf)], extra_val=[str(val_list)]
    )
    data = emotion_train.detector_set(replace(cfg, input_size=32, in_chans=3))  # a 32 px student
    model, pre = emotion_train.load_emotion_model(str(MOBILENET))
    view = data.teacher_view(pre)
    assert view.shape == (len(data.labels), 96, 96, 3)  # every training face, at the teacher's own input
    boxer = face_crops.FaceBoxer()
    _, faces, _ = face_crops.load_split_faces(boxer, raf, str(val_list))
    margin = load_config()["pipeline"]["margin"]
    cut = pre.face_inputs(faces.images[0], faces.boxes[:1], margin)[0]  # the first RAF-DB training face
    first = len(data.labels) - len(faces)
    assert np.array_equal(view[first], cut)  # cut from its box at the pipeline's margin, no jitter
    probs = teacher_probs([str(MOBILENET)], data.teacher_view, data.labels, torch.device("cpu"), amp=False)
    assert (probs.argmax(1).numpy() == data.labels).mean() > 0.6  # a real teacher on real faces


@pytest.mark.slow
def test_detector_crop_training_validates_on_each_set_and_resumes_exactly(
    small_fer: Path, small_wild: tuple[Path, Path], tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("FER_YOLO_CACHE", str(tmp_path / "cache"))  # the detector pass runs on these images
    raf, val_list = small_wild
    cfg = config(
        small_fer,
        tmp_path / "runs",
        crops="detector",
        extra_data=[str(raf)],
        extra_val=[str(val_list)],
        data_share=0.5,
        input_size=32,
        in_chans=3,
        epochs=2,
        batch=16,
        init=str(RESNET18),  # the shipped grey ResNet18, grown into colour
        augment={"flip": 0.5},
    )

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(emotion_train, "plot_curves", stop)  # Ctrl-C right after epoch 1 is saved
        train_emotion(cfg)
    run = tmp_path / "runs/train"
    train_emotion(cfg, resume=run)
    log = rows(run)
    assert [r["epoch"] for r in log] == ["1", "2"]
    assert set(log[0]) >= {"fer_acc", "raf_acc"}  # each validation set, and their mean selects
    mean = (float(log[1]["fer_acc"]) + float(log[1]["raf_acc"])) / 2
    assert float(log[1]["val_acc"]) == pytest.approx(mean, abs=1e-4)
    meta = load_checkpoint(run / "weights/best.pt")["meta"]
    assert meta["preprocess"]["grey"] is False and meta["preprocess"]["source_size"] == 0
    # 72 FER2013 (half of 144) + 24 RAF-DB training faces an epoch: 6 batches of 16, two epochs
    assert load_checkpoint(run / "weights/last.pt")["step"] == 12
    assert "found by the detector" in (run / "train.log").read_text()

    straight = load_checkpoint(train_emotion(replace(cfg, name="straight")) / "weights/last.pt")
    resumed = load_checkpoint(run / "weights/last.pt")
    for k, v in straight["model"].items():  # the same margins, jitter and shuffles after the restart
        assert torch.allclose(resumed["model"][k].float(), v.float(), atol=1e-5), k
