"""WIDER FACE AP: hand-computed cases, the official face counts on the real split, error handling."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_yolo.detectors.base import FaceDetector, make_detections
from fer_yolo.errors import DatasetError
from fer_yolo.evaluation import widerface_ap as wap
from fer_yolo.evaluation.plots import plot_pr_curves


def image(boxes, keep=None, path="val/images/0--Parade/a.webp") -> wap.GroundTruthImage:
    """A ground-truth record with every box kept in all settings unless `keep` says otherwise."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    keep = np.ones(len(boxes), bool) if keep is None else np.asarray(keep, bool)
    return wap.GroundTruthImage(path, boxes, {s: keep for s in wap.SETTINGS})


def aps(result: dict) -> list[float]:
    return [result[s] for s in wap.SETTINGS]


A = [10, 10, 49, 49]
B = [100, 100, 139, 139]
FAR = [300, 300, 339, 339]


# ---------------------------------------------------------------- hand-made cases


def test_box_overlaps_uses_plus_one_pixel_convention():
    # [0, 9] spans 10 pixels: areas 100 each, intersection 5 x 10 = 50, union 150 (1/3, not 36/126).
    query = np.array([[0.0, 0, 9, 9], [5, 0, 14, 9], [20, 20, 30, 30]])
    iou = wap.box_overlaps(np.array([[0.0, 0, 9, 9]]), query)
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0]])


def test_perfect_detections_give_ap_one():
    gt = [image([A, B]), image([FAR], path="val/images/0--Parade/b.webp")]
    preds = {
        gt[0].path: (np.array([A, B]), np.array([0.9, 0.3])),
        gt[1].path: (np.array([FAR]), np.array([0.6])),
    }
    result = wap.evaluate(preds, gt)
    assert aps(result) == [1.0, 1.0, 1.0]
    assert result["faces"] == {"easy": 3, "medium": 3, "hard": 3}


def test_tp_fp_tp_by_hand():
    # Scores .9/.8/.7 normalise to 1/.5/0. Thresholds above .5 keep the TP only: P 1, R 1/2.
    # Down to .5 the FP joins: P 1/2, R 1/2. At threshold 0 all three: P 2/3, R 1.
    # Precision envelope: 1 up to recall 1/2, then 2/3: AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    gt = [image([A, B])]
    preds = {gt[0].path: (np.array([A, FAR, B]), np.array([0.9, 0.8, 0.7]))}
    np.testing.assert_allclose(aps(wap.evaluate(preds, gt)), [5 / 6] * 3)


def test_second_detection_of_a_face_is_a_false_positive():
    # Same numbers as the TP/FP/TP case: the duplicate on A plays the FP.
    gt = [image([A, B])]
    dup = np.array(A) + [1, 1, 1, 1]
    preds = {gt[0].path: (np.array([A, dup, B]), np.array([0.9, 0.8, 0.7]))}
    np.testing.assert_allclose(aps(wap.evaluate(preds, gt)), [5 / 6] * 3)


def test_detection_on_ignored_face_is_neither_tp_nor_fp():
    # B is not in the keep list. Its detection has the top score, yet precision stays 1 where A is
    # found (proposals 1, TP 1); the FAR false positive only enters at threshold 0: AP = 1.
    gt = [image([A, B], keep=[True, False])]
    preds = {gt[0].path: (np.array([B, A, FAR]), np.array([0.9, 0.5, 0.1]))}
    result = wap.evaluate(preds, gt)
    assert result["faces"]["hard"] == 1
    np.testing.assert_allclose(aps(result), [1.0] * 3)
    # Had the detection on B been a false positive, precision would be 1/2 at recall 1: AP 1/2.


def test_missed_faces_and_unsorted_input():
    # 3 faces, 1 found. A (score 1 after normalisation) is a TP: P 1 at R 1/3; the stray box (score 0)
    # adds an FP at threshold 0: P 1/2, still R 1/3. AP = 1/3 * 1. Input order must not matter, and a
    # leading "./" in the key is accepted.
    gt = [image([A, B, FAR])]
    preds = {"./" + gt[0].path: (np.array([[500, 500, 520, 520], A]), np.array([0.2, 0.8]))}
    np.testing.assert_allclose(aps(wap.evaluate(preds, gt)), [1 / 3] * 3)


def test_iou_exactly_half_counts():
    gt = [image([[0, 0, 9, 9]])]
    pred = np.array([[0.0, 0, 9, 4]])  # 10 x 5 pixels inside a 10 x 10 box: IoU 0.5
    assert wap.evaluate({gt[0].path: (pred, np.array([1.0]))}, gt)["easy"] == pytest.approx(1.0)
    pred = np.array([[0.0, 0, 9, 3.9]])
    assert wap.evaluate({gt[0].path: (pred, np.array([1.0]))}, gt)["easy"] == 0.0


def test_settings_use_their_own_keep_lists():
    rec = wap.GroundTruthImage(
        "x.webp",
        np.array([A, B], np.float64),
        {"easy": np.array([True, False]), "medium": np.array([True, True]), "hard": np.array([True, True])},
    )
    result = wap.evaluate({"x.webp": (np.array([A]), np.array([0.5]))}, [rec])
    assert aps(result) == pytest.approx([1.0, 0.5, 0.5])
    assert result["faces"] == {"easy": 1, "medium": 2, "hard": 2}


def test_no_detections_give_zero_ap():
    result = wap.evaluate({}, [image([A])])
    assert aps(result) == [0.0, 0.0, 0.0]
    assert len(result["pr"]["easy"]["precision"]) == wap.NUM_THRESHOLDS


def test_align_boxes_restores_dropped_degenerate_boxes():
    mat = np.array([[160, 160, 32, 32], [0, 0, 0, 0], [320, 0, 16, 16], [10, 10, -2, 5]], np.float64)
    text = mat[[0, 2]] * 0.625
    out = wap.align_boxes("e/f", text, mat)
    np.testing.assert_allclose(out, mat * 0.625)
    with pytest.raises(DatasetError, match="order or coordinates differ"):
        wap.align_boxes("e/f", text[::-1], mat)  # order differs
    with pytest.raises(DatasetError, match="1 text boxes but 2 usable"):
        wap.align_boxes("e/f", text[:1], mat)  # count differs


def test_plot_pr_curves(tmp_path):
    gt = [image([A, B])]
    result = wap.evaluate({gt[0].path: (np.array([A, FAR, B]), np.array([0.9, 0.8, 0.7]))}, gt)
    out = tmp_path / "sub" / "pr.png"
    missed = wap.evaluate({gt[0].path: (np.array([A, FAR]), np.array([0.9, 0.8]))}, gt)
    plot_pr_curves({"a": result, "b": missed}, out)
    assert [p.name for p in out.parent.iterdir()] == ["pr.png"]
    drawn = cv2.imread(str(out))
    assert drawn.shape == (552, 1800, 3)  # three panels, 15 x 4.6 in at 120 dpi

    def pixels(colour: str) -> int:
        bgr = np.array([int(colour[i : i + 2], 16) for i in (5, 3, 1)])
        return int((np.abs(drawn.astype(int) - bgr).max(axis=2) <= 10).sum())

    # a (recall 1) draws a longer curve than b (recall 0.5) in each panel: matplotlib's first two colours
    assert pixels("#1f77b4") > 1.5 * pixels("#ff7f0e") > 0


# ---------------------------------------------------------------- missing files


def test_missing_files_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        wap.load_ground_truth(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="split file") as e:
        wap.load_ground_truth(tmp_path)
    assert e.value.hint
    split = tmp_path / "split.txt"
    split.write_text("./val/images/0--Parade/0_Parade_Parade_0_102.webp\n")
    with pytest.raises(DatasetError, match="text ground truth"):
        wap.load_ground_truth(tmp_path, split)
    (tmp_path / "val").mkdir()
    text = tmp_path / "val" / "wider_face_val_bbx_gt.txt"
    text.write_text("0--Parade/0_Parade_Parade_0_102.webp\n0\n0 0 0 0\n")
    with pytest.raises(DatasetError, match="easy ground truth"):
        wap.load_ground_truth(tmp_path, split)
    split.write_text("./train/images/1--Handshaking/x.webp\n")
    with pytest.raises(DatasetError, match="not a WIDER FACE validation image"):
        wap.load_ground_truth(tmp_path, split)
    with pytest.raises(DatasetError, match="image not found"):
        wap.run_detector(BoxDetector(), [image([A])], tmp_path)


# ---------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def holdout(widerface: Path) -> list[wap.GroundTruthImage]:
    return wap.load_ground_truth(widerface)


def test_holdout_face_counts_match_baselines(holdout):
    assert len(holdout) == 1074
    assert wap.count_faces(holdout) == {"easy": 2402, "medium": 4783, "hard": 10841}


def test_whole_val_split_aligns(widerface, tmp_path):
    text = wap.read_text_ground_truth(widerface / wap.TEXT_GT)
    split = tmp_path / "all.txt"
    split.write_text("".join(f"./val/images/{name}.webp\n" for name in text))
    gt = wap.load_ground_truth(widerface, split)
    assert len(gt) == 3226
    # 9 images have boxes the text file dropped (zero or negative size): restored from the .mat.
    assert sum(len(r.boxes) != len(text[r.name]) for r in gt) == 9
    skating = next(r for r in gt if r.name == "39--Ice_Skating/39_Ice_Skating_iceskiing_39_583")
    degenerate = (skating.boxes[:, 2] <= skating.boxes[:, 0]) | (skating.boxes[:, 3] <= skating.boxes[:, 1])
    assert skating.keep["hard"][degenerate].all() and degenerate.sum() == 1  # a hard face no one can find


@pytest.mark.parametrize("scores", ["ones", "random"])
def test_ground_truth_as_predictions_gives_ap_near_one(holdout, scores):
    rng = np.random.default_rng(0)
    score = (lambda n: np.ones(n)) if scores == "ones" else rng.random
    preds = {r.path: (r.boxes, score(len(r.boxes))) for r in holdout}
    result = wap.evaluate(preds, holdout)
    for s in wap.SETTINGS:
        assert 0.999 <= result[s] <= 1.0, (s, result[s])


class BoxDetector(FaceDetector):
    """Finds one face in the middle of every image."""

    def detect_batch(self, images: list[np.ndarray]) -> list:
        out = []
        for im in images:
            h, w = im.shape[:2]
            out.append(make_detections(np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]]), np.array([0.5])))
        return out


def test_run_detector_on_real_images(holdout, widerface):
    preds, speed = wap.run_detector(BoxDetector(), holdout, widerface, warmup=1, limit=3)
    assert list(preds) == [r.path for r in holdout[:3]]
    for path, (boxes, scores) in preds.items():  # the detector's pixels, unscaled, in the image it was given
        h, w = cv2.imread(str(widerface / path)).shape[:2]
        assert np.allclose(boxes, [[w / 4, h / 4, 3 * w / 4, 3 * h / 4]]) and np.allclose(scores, [0.5])
    assert speed > 0


def test_timing_passes_take_turns_and_time_each_detector(holdout, widerface):
    from fer_yolo.evaluation.detector_eval import time_detectors

    calls = []

    class Recording(BoxDetector):
        def __init__(self, name: str, delay_s: float) -> None:
            self.name, self.delay_s = name, delay_s

        def detect_batch(self, images: list[np.ndarray]) -> list:
            calls.append(self.name)
            time.sleep(self.delay_s)
            return super().detect_batch(images)

    recorders = [Recording("a", 0.0), Recording("b", 0.02)]
    fast, slow = time_detectors(recorders, holdout[:2], widerface, passes=3, threads=None)
    assert calls == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]  # every other pass reversed
    assert len(fast) == len(slow) == 3 and max(slow) < 50 < min(fast)  # 20 ms an image: under 50 images/s


def test_evaluate_detectors_writes_results(holdout, widerface, tmp_path, monkeypatch):
    from fer_yolo.detectors import DETECTORS
    from fer_yolo.errors import ConfigError
    from fer_yolo.evaluation.detector_eval import evaluate_detectors

    monkeypatch.setitem(DETECTORS, "box", f"{__name__}:BoxDetector")
    split = widerface / "val_holdout.txt"
    table = evaluate_detectors(["box"], widerface, split, tmp_path, limit=4, speed_passes=3)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["images"] == 4 and results["results"][0]["detector"] == "box"
    measured = results["results"][0]
    assert len(measured["speed_passes"]) == 3
    assert measured["images_per_s"] == pytest.approx(np.median(measured["speed_passes"]), 0.01)
    assert "median of 3 passes" in table
    expected = wap.evaluate(wap.run_detector(BoxDetector(), holdout, widerface, limit=4)[0], holdout[:4])
    assert [measured[s] for s in wap.SETTINGS] == pytest.approx([expected[s] for s in wap.SETTINGS])
    assert "| box | defaults |" in table
    assert table == (tmp_path / "results.md").read_text()
    assert (tmp_path / "pr.png").stat().st_size > 0
    with pytest.raises(ConfigError, match="unknown detector"):
        evaluate_detectors(["nope"], widerface, split, tmp_path, limit=4)


def test_an_unreadable_image_fails_the_eval_before_any_detector_runs(widerface, tmp_path, monkeypatch):
    from fer_yolo.detectors import DETECTORS
    from fer_yolo.evaluation.detector_eval import evaluate_detectors

    runs, detect = [], BoxDetector.detect_batch
    monkeypatch.setattr(BoxDetector, "detect_batch", lambda self, ims: runs.append(1) or detect(self, ims))
    split = tmp_path / "split.txt"  # three holdout images, the last one broken in a copy of the folder
    lines = (widerface / "val_holdout.txt").read_text().splitlines()[:3]
    split.write_text("\n".join(lines) + "\n")
    root = tmp_path / "widerface"
    root.mkdir()
    for entry in widerface.iterdir():
        (root / entry.name).symlink_to(entry)
    (root / "val").unlink()
    shutil.copytree(widerface / "val", root / "val", ignore=shutil.ignore_patterns("*.webp"))
    for k, line in enumerate(lines):
        image = root / line
        shutil.copy(widerface / line, image) if k < 2 else image.write_bytes(b"RIFF\x00\x00 cut")
    monkeypatch.setitem(DETECTORS, "box", f"{__name__}:BoxDetector")
    with pytest.raises(DatasetError, match="cannot decode image"):
        evaluate_detectors(["box", "box"], root, split, tmp_path / "out")
    assert runs == [] and not (tmp_path / "out").exists()


def test_eval_detector_counts_every_face_of_a_crowd(widerface, tmp_path):
    from fer_yolo.cli import main
    from fer_yolo.utils.paths import default_weights

    crowd = "./val/images/2--Demonstration/2_Demonstration_Demonstration_Or_Protest_2_687.webp"  # 709 faces
    split = tmp_path / "crowd.txt"
    split.write_text(crowd + "\n")
    weights = str(default_weights("detector"))
    for max_det in (300, None):  # None: the command's defaults, the shipped weights included
        flag = ["--max-det", str(max_det), "--weights", weights] if max_det else []
        args = ["eval", "detector", "--compare", "--split", str(split), *flag]
        assert main([*args, "--widerface", str(widerface), "--out", str(tmp_path / str(max_det))]) == 0
    capped, full = (json.loads((tmp_path / f"{m}/results.json").read_text())["results"] for m in (300, None))
    assert len(capped) == len(full) == 1 and all(
        f"weights={weights!r}" in r[0]["spec"] for r in (capped, full)
    )
    capped, full = capped[0], full[0]
    assert capped["detections"] == 300 < full["detections"] <= 1000
    assert full["hard"] > capped["hard"]
