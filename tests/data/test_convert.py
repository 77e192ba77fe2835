"""`fer-yolo convert` on real data: every input format, bad inputs, resume and the duplicate rule."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from fer_yolo.config import load_config
from fer_yolo.data.convert.engine import ConvertSettings, convert, detect_format
from fer_yolo.data.convert.ferplus import list_ferplus, votes_to_label
from fer_yolo.data.crops import load_crops
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.errors import ConfigError, DatasetError
from fer_yolo.utils.io import atomic_path


def settings(**over) -> ConvertSettings:
    return ConvertSettings(**load_config(overrides={"convert": {"workers": 0} | over})["convert"])


@pytest.fixture
def fer_subset(fer2013: Path, tmp_path: Path) -> Path:
    """10 images per class and split (train, PublicTest, PrivateTest) of two FER2013 classes."""
    root = tmp_path / "fer 2013"  # a space in the path on purpose
    for split, prefix in [("train", "Training_"), ("test", "PublicTest_"), ("test", "PrivateTest_")]:
        for emotion in ("angry", "happy"):
            files = sorted((fer2013 / split / emotion).glob(f"{prefix}*"))[:10]
            (root / split / emotion).mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copy(f, root / split / emotion / f.name)
    return root


def test_fer2013_folders_to_crops_and_yolo(fer_subset: Path, tmp_path: Path):
    report = convert(fer_subset, tmp_path / "out", settings(), progress=False)
    assert report["format"] == "fer2013"
    assert report["crops"] == {s: {"angry": 10, "happy": 10} for s in ("train", "val", "test")}
    crop = cv2.imread(
        str(next((tmp_path / "out/crops/val/happy").glob("PublicTest_*.png"))), cv2.IMREAD_UNCHANGED
    )
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    label = next((tmp_path / "out/yolo/labels/train").glob("*.txt")).read_text().split()
    assert label[0] in ("0", "3") and [float(v) for v in label[1:]] == [0.5, 0.5, 1.0, 1.0]
    data_yaml = (tmp_path / "out/yolo/data.yaml").read_text()
    assert "train: images/train" in data_yaml and "val: images/val" in data_yaml and "6: neutral" in data_yaml
    saved = json.loads((tmp_path / "out/report.json").read_text())
    assert saved["converted"] == 60 and saved["warnings"] == []


def test_crops_size_colour_and_augment_only_on_train(fer_subset: Path, tmp_path: Path):
    convert(
        fer_subset,
        tmp_path / "out",
        settings(kinds=["crops"], size=64, color=True, augment=2),
        progress=False,
    )
    train = sorted((tmp_path / "out/crops/train/angry").glob("*.png"))
    assert len(train) == 30 and sum("_aug" in p.name for p in train) == 20
    assert not any("_aug" in p.name for p in (tmp_path / "out/crops/test").rglob("*.png"))
    img = cv2.imread(str(train[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 64, 3)
    assert not (tmp_path / "out/yolo").exists()


def test_bad_files_are_skipped_and_reported(fer_subset: Path, tmp_path: Path):
    good = next((fer_subset / "train/happy").iterdir())
    (fer_subset / "train/happy/empty.jpg").write_bytes(b"")
    (fer_subset / "train/happy/text.jpg").write_text("not an image")
    (fer_subset / "train/happy/cut.jpg").write_bytes(good.read_bytes()[:200])
    (fer_subset / "train/happy/notes.txt").write_text("x")
    shutil.copy(good, fer_subset / "train/happy/.x.jpg.k2j4.tmp.jpg")  # left by a killed writer: ignored
    (fer_subset / "train/bored").mkdir()
    shutil.copy(good, fer_subset / "train/bored/x.jpg")
    report = convert(fer_subset, tmp_path / "out", settings(), progress=False)
    reasons = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["text.jpg"] == "not an image"
    assert reasons["cut.jpg"].startswith("truncated or corrupt")
    assert reasons["notes.txt"] == "not an image file name"
    assert "not one of" in reasons["x.jpg"]
    assert report["converted"] == 60 and not any(name.startswith(".") for name in reasons)
    crops = load_crops(tmp_path / "out/crops", "train")
    shutil.copy(good, tmp_path / "out/crops/train/happy/.y.png.k2j4.tmp.png")
    assert len(load_crops(tmp_path / "out/crops", "train")) == len(crops)


def test_duplicates_never_cross_the_split(fer_subset: Path, tmp_path: Path):
    test_file = next((fer_subset / "test/angry").glob("PrivateTest_*"))
    shutil.copy(test_file, fer_subset / "train/angry/Training_copy.jpg")  # a train copy of a test image
    report = convert(fer_subset, tmp_path / "out", settings(), progress=False)
    removed = report["duplicates"]["removed_cross_split"]
    assert [Path(r["source"]).name for r in removed] == ["Training_copy.jpg"]
    assert removed[0]["kept_in"] == "test"
    assert not list((tmp_path / "out/crops/train/angry").glob("Training_copy_*.png"))
    assert len(list((tmp_path / "out/crops/test/angry").glob(f"{test_file.stem}_*.png"))) == 1


def test_ratio_split_is_deterministic_and_keeps_copies_together(fer_subset: Path, tmp_path: Path):
    flat = tmp_path / "flat"
    shutil.copytree(fer_subset / "train", flat)
    first = next((flat / "happy").iterdir())
    shutil.copy(first, flat / "happy" / "copy_of_first.jpg")
    a = convert(flat, tmp_path / "a", settings(format="fer2013", split="re-split"), progress=False)
    b = convert(flat, tmp_path / "b", settings(format="fer2013", split="re-split"), progress=False)
    assert a["crops"] == b["crops"] and len(a["crops"]) >= 2
    split_of = {p.stem.rsplit("_", 1)[0]: p.parts[-3] for p in (tmp_path / "a/crops").rglob("*.png")}
    assert split_of[first.stem] == split_of["copy_of_first"]


def test_names_that_differ_only_by_extension_keep_both_images(fer_subset: Path, tmp_path: Path):
    src = tmp_path / "src"
    (src / "train/happy").mkdir(parents=True)
    a, b = sorted((fer_subset / "train/happy").iterdir())[:2]
    shutil.copy(a, src / "train/happy/x.jpg")
    cv2.imwrite(str(src / "train/happy/x.png"), cv2.imread(str(b)))  # another face, same stem
    report = convert(src, tmp_path / "out", settings(format="fer2013", kinds=["crops"]), progress=False)
    crops = sorted((tmp_path / "out/crops/train/happy").glob("*.png"))
    assert len(crops) == 2 and report["crops"]["train"]["happy"] == 2  # probe: one crop, report said 3
    assert not np.array_equal(cv2.imread(str(crops[0])), cv2.imread(str(crops[1])))


def test_a_folder_that_changes_between_runs_leaves_no_stale_outputs(fer_subset: Path, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    shutil.copytree(fer_subset, src)
    convert(src, out, settings(kinds=["crops"]), progress=False)
    first = next((src / "train/happy").iterdir())
    cv2.imwrite(str(first.with_suffix(".png")), cv2.imread(str(first))[::-1])  # a clashing name, new face
    gone = sorted((src / "train/angry").iterdir())[0]
    gone.unlink()  # and one input removed
    report = convert(src, out, settings(kinds=["crops"]), progress=False)
    for emotion in ("happy", "angry"):
        on_disk = len(list((out / "crops/train" / emotion).glob("*.png")))
        assert on_disk == report["crops"]["train"][emotion] == len(list((src / "train" / emotion).iterdir()))
    assert not list((out / "crops/train/angry").glob(f"{gone.stem}_*.png"))


def test_a_changed_label_converts_the_image_again(fer2013: Path, tmp_path: Path):
    path, out = tmp_path / "fer2013.csv", tmp_path / "out"
    rows = [
        cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).reshape(-1) for f in sorted(fer2013.glob("train/sad/*"))[:3]
    ]

    def write(emotions: list[int]) -> dict:
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["emotion", "pixels", "Usage"])
            w.writerows([e, " ".join(map(str, pixels)), "Training"] for e, pixels in zip(emotions, rows))
        return convert(path, out, settings(kinds=["crops"]), progress=False)

    assert write([4, 4, 4])["crops"] == {"train": {"sad": 3}}
    report = write([4, 4, 3])  # the emotion column of one row corrected: sad -> happy
    assert report["crops"] == {"train": {"sad": 2, "happy": 1}}
    on_disk = {e: len(list((out / "crops/train" / e).iterdir())) for e in ("sad", "happy")}
    assert on_disk == {"sad": 2, "happy": 1}  # the old sad crop is gone


def test_resume_does_not_redo_finished_files(fer_subset: Path, tmp_path: Path):
    out = tmp_path / "out"
    convert(fer_subset, out, settings(kinds=["crops"]), progress=False)
    manifest = out / ".convert/manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-10]) + "\n" + lines[-10][:20])  # crash: 10 lost, 1 cut off
    victim = out / json.loads(lines[-1])["outputs"][0]
    victim.unlink()
    cut_write = atomic_path(victim)  # the crash stopped a write midway: its temporary file is left
    cut_write.__enter__().write_bytes(b"half a png")
    kept = out / json.loads(lines[0])["outputs"][0]
    mtime = kept.stat().st_mtime_ns
    report = convert(fer_subset, out, settings(kinds=["crops"]), progress=False)
    assert report["converted"] == 60 and victim.exists()
    assert not list(out.rglob("*.tmp*")), "the stopped run's temporary file is removed"
    assert kept.stat().st_mtime_ns == mtime
    assert len(manifest.read_text().splitlines()) == 61  # 50 + the cut line + 10 redone


def test_an_output_deleted_after_a_finished_run_is_made_again(fer_subset: Path, tmp_path: Path):
    out = tmp_path / "out"
    convert(fer_subset, out, settings(), progress=False)
    label = next((out / "yolo/labels/train").glob("*.txt"))
    crop = next((out / "crops/val/happy").glob("*.png"))
    content = label.read_text()
    label.unlink()
    crop.unlink()
    report = convert(fer_subset, out, settings(), progress=False)
    assert report["converted"] == 60 and label.read_text() == content and crop.is_file()


def test_resume_with_other_settings_is_refused(fer_subset: Path, tmp_path: Path):
    convert(fer_subset, tmp_path / "out", settings(kinds=["crops"]), progress=False)
    with pytest.raises(ConfigError, match="size"):
        convert(fer_subset, tmp_path / "out", settings(kinds=["crops"], size=64), progress=False)


def test_fer2013_csv(fer2013: Path, tmp_path: Path):
    path = tmp_path / "fer2013.csv"
    files = sorted((fer2013 / "train/sad").glob("*.jpg"))[:5]
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # with a byte-order mark, as Excel saves it
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for file in files:
            pixels = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE).reshape(-1)
            w.writerow([4, " ".join(map(str, pixels)), "Training"])
        w.writerow([4, "1 2 3", "PrivateTest"])
        w.writerow([9, "0 " * 2304, "Training"])
        w.writerow([4, "0 " * 2303 + "x", "Training"])
        w.writerow([4, "nan " * 2304, "Training"])
        w.writerow([4, "99999999999999999999 " + "0 " * 2303, "Training"])  # spaces lost
    path.write_bytes(path.read_bytes() + b"4,\xff,Training\r\n")  # a non-UTF-8 byte spoils its row only
    assert detect_format(path) == "fer2013-csv"
    threads = torch.get_num_threads()
    report = convert(path, tmp_path / "out", settings(), progress=False)
    assert torch.get_num_threads() == threads  # converting in this process leaves its threads as they were
    assert report["crops"] == {"train": {"sad": 5}}
    reasons = sorted(s["reason"] for s in report["skipped"])
    assert reasons[0] == "bad emotion value '9'"
    assert reasons[1] == "pixel string holds a value far outside 0-255"
    assert reasons[2] == reasons[3] == reasons[4] == "pixel string holds a value that is not a whole number"
    assert reasons[5].startswith("pixel string is not a square")
    crops = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (tmp_path / "out/crops/train/sad").iterdir()]
    assert len(crops) == 5
    for file in files:  # each CSV row comes out as its pixels, unchanged (PNG is lossless)
        original = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        assert sum(np.array_equal(original, crop) for crop in crops) == 1


@pytest.mark.parametrize(
    ("votes", "mode", "label", "reason"),
    [
        ([0, 8, 1, 0, 0, 0, 0, 1, 0, 0], "majority", 3, ""),
        ([4, 4, 0, 0, 0, 0, 0, 0, 2, 0], "majority", None, "FER+ votes have no majority"),
        ([1, 0, 0, 0, 0, 0, 0, 0, 2, 7], "majority", None, "FER+ voters: unknown or not a face"),
        ([2, 0, 0, 0, 6, 0, 0, 2, 0, 0], "soft", 0, ""),
    ],
)
def test_ferplus_votes(votes, mode, label, reason):
    got, soft, why = votes_to_label(np.array(votes), mode)
    assert (got, why) == (label, reason)
    if mode == "soft":
        assert soft[0] == pytest.approx(0.75) and soft[6] == pytest.approx(0.25)


def test_ferplus_onto_fer2013_files(fer2013: Path, ferplus: Path, tmp_path: Path):
    small = tmp_path / "ferplus"
    shutil.copy(ferplus / "ferplus_to_fer2013_jpg.csv", small.mkdir() or small)
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        (small / folder).mkdir()
        rows = (ferplus / folder / "label.csv").read_text().splitlines()[:20]
        (small / folder / "label.csv").write_text("\n".join(rows) + "\n")
    with (small / "FER2013Train/label.csv").open("a") as f:  # a damaged row and a blank line
        f.write('fer9999999.png,"(0, 0, 48, 48)",4,x,0,1,3,2,0,0,0,0\n\n')
    assert detect_format(small) == "ferplus"
    s = settings(kinds=["crops"], images=str(fer2013), ferplus_labels="majority")
    report = convert(small, tmp_path / "out", s, progress=False)
    total = sum(sum(c.values()) for c in report["crops"].values())
    assert set(report["crops"]) == {"train", "val", "test"}
    assert total + len(report["skipped"]) == 61 and total >= 40
    assert any("unreadable label.csv row" in str(entry) for entry in report["skipped"])
    assert not (tmp_path / "out/crops/soft_labels.csv").exists()
    assert load_crops(tmp_path / "out/crops", "train").soft is None

    s = settings(kinds=["crops"], images=str(fer2013), ferplus_labels="soft")
    report = convert(small, tmp_path / "soft", s, progress=False)
    rows = (tmp_path / "soft/crops/soft_labels.csv").read_text().splitlines()
    assert rows[0] == "path," + ",".join(EMOTIONS)
    assert (
        len(rows) - 1 == sum(sum(c.values()) for c in report["crops"].values()) > total
    )  # no majority needed
    train = load_crops(tmp_path / "soft/crops", "train")
    assert np.allclose(train.soft.sum(1), 1) and (train.soft.argmax(1) == train.labels).all()
    assert (train.soft.max(1) < 1).any()  # real vote splits, not one-hot labels


@pytest.mark.slow
def test_ferplus_copies_of_one_fer2013_image_become_one_sample(fer2013: Path, ferplus: Path, tmp_path: Path):
    with (ferplus / "ferplus_to_fer2013_jpg.csv").open(newline="") as f:
        mapping = [r for r in csv.DictReader(f) if r["usage"] == "Training"]
    pngs_of: dict[str, list[str]] = {}
    for r in mapping:
        pngs_of.setdefault(r["fer2013_jpg"], []).append(r["ferplus_png"])
    jpg, pngs = next((j, p) for j, p in pngs_of.items() if len(p) == 2)  # FER2013 holds this image twice
    rows = [r for r in csv.reader((ferplus / "FER2013Train/label.csv").open()) if r and r[0] in pngs]
    small = tmp_path / "ferplus"
    (small / "FER2013Train").mkdir(parents=True)
    shutil.copy(ferplus / "ferplus_to_fer2013_jpg.csv", small)
    with (small / "FER2013Train/label.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    items, skipped = list_ferplus(small, fer2013, "soft")
    assert [Path(i.source) for i in items] == [fer2013 / jpg] and not skipped
    votes = np.array([[int(v) for v in r[2:12]] for r in rows]).sum(0)  # 20 annotators of one image
    assert items[0].soft == votes_to_label(votes, "soft")[1]


def test_photos_with_mtcnn(media: Path, tmp_path: Path):
    src = tmp_path / "photos"
    for emotion, files in {
        "happy": ["facenet_pytorch/multiface.jpg", "face_recognition/obama.jpg"],
        "neutral": ["face_recognition/two_people.jpg", "dlib_faces/dogs.jpg"],
    }.items():
        (src / emotion).mkdir(parents=True)
        for f in files:
            shutil.copy(media / f, src / emotion)
    assert detect_format(src) == "photos"
    report = convert(src, tmp_path / "out", settings(classes="face", workers=2), progress=False)
    assert [Path(s["source"]).name for s in report["skipped"]] == ["dogs.jpg"]
    assert report["skipped"][0]["reason"] == "no face found"
    multiface = (tmp_path / "out/yolo/labels").rglob("multiface_*.txt")
    assert len(next(multiface).read_text().splitlines()) == 6  # every face in the YOLO labels
    crops = list((tmp_path / "out/crops").rglob("*.png"))
    assert len(crops) == 3  # one crop per photo: the largest face
    assert any("largest of 6" in n["note"] for n in report["notes"])
    data = yaml.safe_load((tmp_path / "out/yolo/data.yaml").read_text())
    assert sorted(report["yolo"]["images"]) == ["train"]  # 3 photos: the ratio split leaves val empty
    assert data["val"] == data["train"] == "images/train"  # ultralytics refuses a data.yaml without val
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith("yolo/data.yaml: no val images")


def test_widerface_ground_truth_to_yolo(widerface: Path, tmp_path: Path):
    lines = (widerface / "val/wider_face_val_bbx_gt.txt").read_text().splitlines()
    gt, i = [], 0
    for _ in range(3):
        n = int(lines[i + 1])
        gt += lines[i : i + 2 + max(n, 1)]
        i += 2 + max(n, 1)
    (tmp_path / "wider").mkdir()
    (tmp_path / "wider/wider_face_val_bbx_gt.txt").write_text("\n".join(gt) + "\n")
    with pytest.raises(ConfigError, match="no emotion labels"):
        convert(tmp_path / "wider", tmp_path / "bad", settings(images=str(widerface / "val/images")))
    s = settings(kinds=["yolo"], classes="face", images=str(widerface / "val/images"))
    report = convert(tmp_path / "wider", tmp_path / "out", s, progress=False)
    labels = sorted((tmp_path / "out/yolo/labels/val").glob("*.txt"))
    assert len(labels) == 3
    first_n = int(lines[1])
    rows = [list(map(float, r.split())) for r in labels[0].read_text().splitlines()]
    assert len(rows) == first_n and all(0 <= v <= 1 for r in rows for v in r[1:])
    x, y, w, h = map(float, lines[2].split()[:4])
    img = cv2.imread(str(widerface / "val/images" / lines[0]))
    assert rows[0][1] == pytest.approx((x + w / 2) / img.shape[1], abs=1e-5)
    assert report["yolo"]["boxes"]["val"] == sum(len(r.read_text().splitlines()) for r in labels)

    renamed = tmp_path / "wider/my_gt.txt"  # any name: read when named as widerface, ratio-split
    renamed.write_text("\n".join(gt) + "\n")
    with pytest.raises(DatasetError, match="cannot tell the format"):
        detect_format(renamed)
    s = settings(format="widerface", kinds=["yolo"], classes="face", images=str(widerface / "val/images"))
    report = convert(renamed, tmp_path / "renamed", s, progress=False)
    assert sum(report["yolo"]["images"].values()) == 3


def test_widerface_holdout_images_never_reach_a_converted_dataset(widerface: Path, tmp_path: Path):
    lines = (widerface / "val/wider_face_val_bbx_gt.txt").read_text().splitlines()
    gt, names, i = [], [], 0
    for _ in range(3):  # a copy of the data's layout with three val images, one of them held out
        n = int(lines[i + 1])
        gt += lines[i : i + 2 + max(n, 1)]
        names.append(lines[i])
        i += 2 + max(n, 1)
    root = tmp_path / "wider"
    for name in names:
        (root / "val/images" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(widerface / "val/images" / name, root / "val/images" / name)
    (root / "val/wider_face_val_bbx_gt.txt").write_text("\n".join(gt) + "\n")
    (root / "val_holdout.txt").write_text(f"./val/images/{names[1]}\n")
    for split in ("keep", "re-split"):  # also when every image gets a new split
        s = settings(kinds=["yolo"], classes="face", split=split)
        report = convert(root, tmp_path / split, s, progress=False)
        assert sum(report["yolo"]["images"].values()) == 2
        [held] = [r for r in report["skipped"] if "held out" in r["reason"]]
        assert held["source"].endswith(names[1])
    (root / "train").mkdir()
    (root / "train/wider_face_train_bbx_gt.txt").write_text("\n".join(gt) + "\n")
    with pytest.raises(ConfigError, match="--images given"):  # whose images would it be?
        convert(root, tmp_path / "two", settings(kinds=["yolo"], classes="face", images=str(root)))


def test_an_input_that_converts_to_nothing_is_an_error_with_its_reasons(fer2013: Path, tmp_path: Path):
    path = tmp_path / "fer2013.csv"  # the right header, rows from a broken export
    path.write_text("emotion,pixels,Usage\n" + "3,1 2 3,Training\n" * 4 + "9,0,Training\n")
    with pytest.raises(DatasetError, match="nothing converted from .*none of its 5 inputs") as e:
        convert(path, tmp_path / "out", settings(), progress=False)
    assert e.value.hint.startswith("4 x pixel string is not a square grey image")
    assert len(json.loads((tmp_path / "out/report.json").read_text())["skipped"]) == 5  # the reasons, kept
    assert not (tmp_path / "out/yolo/data.yaml").exists()  # no dataset that names no images


def test_unknown_layout_is_a_clear_error(tmp_path: Path):
    (tmp_path / "misc").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the format"):
        convert(tmp_path, tmp_path / "out", settings(), progress=False)


def test_cli_convert_runs_and_errors_cleanly(fer_subset: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "fer_yolo.cli", "convert"]
    ok = subprocess.run(
        cmd + [str(fer_subset), "-o", str(tmp_path / "o"), "--kind", "crops", "-q"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "converted 60" in ok.stdout
    bad = subprocess.run(
        cmd + [str(tmp_path / "nope"), "-o", str(tmp_path / "o2")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "error: input not found" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_ultralytics_trains_one_epoch_on_yolo_output(fer_subset: Path, tmp_path: Path, no_network: list):
    from fer_yolo.utils.ultralytics_env import setup_ultralytics

    setup_ultralytics()
    from ultralytics import YOLO

    convert(fer_subset, tmp_path / "out", settings(kinds=["yolo"]), progress=False)
    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(tmp_path / "out/yolo/data.yaml"),
        epochs=1,
        imgsz=64,
        batch=8,
        device="cpu",
        workers=0,
        project=str(tmp_path / "runs"),
        name="t",
        amp=False,
        verbose=False,
    )  # plots on: fonts must be local
    assert (tmp_path / "runs/t/weights/last.pt").is_file() and (tmp_path / "runs/t/results.png").is_file()
    rows = list(csv.DictReader((tmp_path / "runs/t/results.csv").open()))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["train/box_loss"].strip()))
    assert no_network == []  # no font, AMP-check weights, hub or update check fetched
