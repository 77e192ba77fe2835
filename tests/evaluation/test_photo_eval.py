"""`fer-yolo eval emotion --photos`: whole labelled photos scored end to end, no-face photos counted wrong."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_yolo.config import load_config
from fer_yolo.errors import WeightsError
from fer_yolo.evaluation.photo_eval import NO_FACE, evaluate_photo_models, photo_report


def test_photo_report_matches_a_hand_count():
    # true: happy happy happy sad sad angry; predicted: happy sad (no face) sad sad happy
    labels = np.array([3, 3, 3, 4, 4, 0])
    predicted = np.array([3, 4, -1, 4, 4, 3])
    r = photo_report(labels, predicted)
    assert r["accuracy"] == pytest.approx(3 / 6) and r["no_face"] == 1
    # happy: P 1/2, R 1/3 -> F1 0.4; sad: P 2/3, R 1 -> 0.8; angry: 0 -> mean over the 3 present = 0.4
    assert r["macro_f1"] == pytest.approx((0.4 + 0.8 + 0.0) / 3)
    assert r["per_class"]["happy"]["recall"] == pytest.approx(1 / 3)
    assert r["confusion_matrix"][3][7] == 1  # the missed face sits in the "no face" column
    assert r["class_names"][-1] == NO_FACE
    # an emotion only predicted counts with F1 0; one whose every photo had no face counts too
    assert photo_report(np.array([3, 3]), np.array([3, 1]))["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert photo_report(np.array([3, 0]), np.array([3, -1]))["macro_f1"] == pytest.approx((1 + 0) / 2)


@pytest.mark.slow
def test_a_folder_of_real_photos_is_scored_as_predict_runs_them(
    rafdb: Path, emotion_weights: Path, tmp_path: Path
):
    root = tmp_path / "photos"
    for emotion in ("happy", "surprise"):
        (root / emotion).mkdir(parents=True)
        for f in sorted((rafdb / "train" / emotion).glob("*.jpg"))[:3]:  # a portrait: the face in its third
            face = cv2.imread(str(f))
            cv2.imwrite(
                str(root / emotion / f.name), cv2.copyMakeBorder(face, *[100] * 4, cv2.BORDER_REPLICATE)
            )
    cv2.imwrite(str(root / "happy/wall.jpg"), np.full((480, 640, 3), 90, np.uint8))  # a photo without a face
    (root / "happy/broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "notes").mkdir()  # not an emotion: ignored
    out = tmp_path / "out"
    table = evaluate_photo_models([str(emotion_weights)], root, out, load_config()["pipeline"])
    result = next(iter(json.loads((out / "results.json").read_text()).values()))
    report = result["report"]
    assert report["n"] == 7 and [Path(p).name for p, _ in report["skipped"]] == ["broken.jpg"]
    photos = {Path(p).name: (true, guess, n) for p, true, guess, n in report["photos"]}
    assert photos["wall.jpg"][1] == NO_FACE and report["no_face"] >= 1
    right = sum(true == guess for true, guess, _ in photos.values())
    assert report["accuracy"] == pytest.approx(right / 7)  # the missed face is wrong, not left out
    assert all(n >= 1 for name, (_, _, n) in photos.items() if name != "wall.jpg")  # aligned faces found
    assert (out / f"confusion_{emotion_weights.stem}_photos.png").stat().st_size > 10_000
    assert f"| {report['n']} |" in table
    recalls = [c.strip() for c in table.split("\n")[2].strip(" |").split("|")[-7:]]  # "-": no such photo
    assert [c == "-" for c in recalls] == [True, True, True, False, True, False, True]  # happy, surprise


def test_a_bad_weights_file_fails_before_any_photo_is_run(media: Path, emotion_weights: Path, tmp_path: Path):
    (tmp_path / "photos/happy").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "photos/happy/a.jpg"), cv2.imread(str(media / "face_recognition/obama.jpg")))
    typo = str(tmp_path / "emotion_resnet43.pt")
    with pytest.raises(WeightsError, match="emotion_resnet43"):
        evaluate_photo_models(
            [str(emotion_weights), typo], tmp_path / "photos", tmp_path / "out", load_config()["pipeline"]
        )
    assert not (tmp_path / "out").exists()  # the first head was not run only for its results to be lost
