"""WIDER FACE easy/medium/hard AP with the official protocol, on the 640-px re-encoded validation images.

The protocol follows the WIDER FACE MATLAB evaluation (and its common Python ports):

* every detection's score is min-max normalised over all detections of the run;
* per image, detections are taken in descending score order and each is matched to the ground-truth
  box it overlaps most (IoU with the "+1 pixel" convention); at IoU >= 0.5 it recalls that box if the
  box is in the setting's keep list, and is dropped from the proposals (neither TP nor FP) if not;
* precision and recall are accumulated over 1,000 score thresholds and summarised by VOC-style AP.

Ground truth: boxes come from ``val/wider_face_val_bbx_gt.txt`` (rescaled to the 640-px images), keep
lists from ``eval/wider_{easy,medium,hard}_val.mat``. The keep lists index the .mat's box list, which
still holds the zero- or negative-size boxes the text file leaves out; :func:`load_ground_truth` puts
those back (scaled, degenerate, never matchable) so that the .mat indices apply unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fer_yolo.data.convert.widerface import parse_wider_gt
from fer_yolo.errors import DatasetError

if TYPE_CHECKING:
    from fer_yolo.detectors.base import FaceDetector

log = logging.getLogger(__name__)

#: The three official difficulty settings, in the order they are reported.
SETTINGS: tuple[str, ...] = ("easy", "medium", "hard")
#: IoU needed for a detection to recall a ground-truth face.
IOU_THRESHOLD = 0.5
#: Number of score thresholds of the precision-recall curve.
NUM_THRESHOLDS = 1000
#: Ground-truth files and images, relative to the widerface folder.
TEXT_GT = Path("val/wider_face_val_bbx_gt.txt")
MAT_GT = "eval/wider_{}_val.mat"  # formatted with a setting name
IMAGES_DIR = "val/images/"
#: Largest gap (pixels at 640 px) tolerated between a text box and its scaled .mat box.
ALIGN_TOLERANCE_PX = 1.0
#: Scale of the 640-px images to the 1024-px-wide originals, for images without any usable box.
DEFAULT_SCALE = 640 / 1024

#: rel_path -> (boxes xyxy (n, 4) in pixels, scores (n,)).
Predictions = dict[str, tuple[np.ndarray, np.ndarray]]

_HINT = "put the re-encoded WIDER FACE data in <data_root>/widerface or set FER_YOLO_DATA"


@dataclass(frozen=True)
class GroundTruthImage:
    """One validation image's ground truth.

    Attributes:
        path: Image path relative to the widerface folder, e.g. ``val/images/0--Parade/x.webp``.
        boxes: (n, 4) float64 xyxy boxes at 640 px, in the .mat's order (degenerate boxes included).
        keep: Setting name -> (n,) bool mask of the boxes that count as faces in that setting.
    """

    path: str
    boxes: np.ndarray
    keep: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        """``event/file`` without the image suffix, as in the .mat files."""
        return _image_name(self.path)


def _image_name(rel_path: str) -> str:
    rel = normalise_path(rel_path)
    if rel.startswith(IMAGES_DIR):
        rel = rel[len(IMAGES_DIR) :]
    return rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel


def normalise_path(rel_path: str) -> str:
    """Return an image path in the form used as prediction key: no leading ``./``, forward slashes."""
    rel = str(rel_path).replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"WIDER FACE {what} not found: {path}", _HINT)
    return path


def read_split(split_file: str | Path, widerface_root: str | Path) -> list[str]:
    """Read an ultralytics list file into image paths relative to `widerface_root`.

    Raises:
        DatasetError: The file is missing, empty, or lists images outside ``val/images``.
    """
    split_file, root = Path(split_file), Path(widerface_root)
    lines = _require_file(split_file, "split file").read_text().splitlines()
    paths = []
    for line in filter(None, (s.strip() for s in lines)):
        p = Path(line)
        if p.is_absolute():
            try:
                line = p.relative_to(root.resolve()).as_posix()
            except ValueError:
                line = p.as_posix()
        rel = normalise_path(line)
        if not rel.startswith(IMAGES_DIR):
            raise DatasetError(
                f"{split_file}: {line!r} is not a WIDER FACE validation image",
                f"list paths like ./{IMAGES_DIR}0--Parade/0_Parade_Parade_0_102.webp",
            )
        paths.append(rel)
    if not paths:
        raise DatasetError(f"split file lists no images: {split_file}", "pass --split with a non-empty list")
    return paths


def read_text_ground_truth(path: str | Path) -> dict[str, np.ndarray]:
    """Parse the official text format into ``event/file`` -> (n, 4) float64 xywh boxes."""
    records = parse_wider_gt(_require_file(Path(path), "text ground truth"))
    return {_image_name(name): rows[:, :4] for name, rows in records}


def read_mat_ground_truth(widerface_root: str | Path) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Read the official .mat files into ``event/file`` -> (xywh boxes at original size, 0-based keep idx)."""
    from scipy.io import loadmat  # scipy is slow to import: only when ground truth is loaded

    root = Path(widerface_root)
    mats = {s: loadmat(_require_file(root / MAT_GT.format(s), f"{s} ground truth")) for s in SETTINGS}
    ref = mats[SETTINGS[-1]]
    out: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for e, event in enumerate(ref["event_list"][:, 0]):
        for j, file in enumerate(ref["file_list"][e, 0][:, 0]):
            boxes = ref["face_bbx_list"][e, 0][j, 0].astype(np.float64).reshape(-1, 4)
            keep = {s: mats[s]["gt_list"][e, 0][j, 0].astype(np.int64).ravel() - 1 for s in SETTINGS}
            out[f"{event[0]}/{file[0]}"] = (boxes, keep)
    return out


def align_boxes(name: str, text_xywh: np.ndarray, mat_xywh: np.ndarray) -> np.ndarray:
    """Return the 640-px xywh boxes in the .mat's order: text boxes, plus the scaled boxes it dropped.

    The text file keeps every .mat box of positive width and height, in order; the others (zero or
    negative size) are rebuilt from the .mat by the image's scale so that .mat indices stay valid.

    Raises:
        DatasetError: The text boxes do not match the .mat boxes (count, order or scale).
    """
    kept = (mat_xywh[:, 2] > 0) & (mat_xywh[:, 3] > 0)
    if kept.sum() != len(text_xywh):
        raise DatasetError(
            f"{name}: {len(text_xywh)} text boxes but {kept.sum()} usable .mat boxes",
            "the text ground truth and eval/*.mat come from different releases: re-create them",
        )
    denom = np.abs(mat_xywh[kept]).sum()
    scale = np.abs(text_xywh).sum() / denom if denom > 0 else DEFAULT_SCALE
    if len(text_xywh) and np.abs(mat_xywh[kept] * scale - text_xywh).max() > ALIGN_TOLERANCE_PX:
        raise DatasetError(
            f"{name}: text boxes are not the .mat boxes rescaled (order or coordinates differ)",
            "the text ground truth and eval/*.mat come from different releases: re-create them",
        )
    out = mat_xywh * scale
    out[kept] = text_xywh
    return out


def load_ground_truth(
    widerface_root: str | Path, split_file: str | Path | None = None
) -> list[GroundTruthImage]:
    """Load boxes and easy/medium/hard keep masks for the images of a split.

    Args:
        widerface_root: The widerface folder (holding ``val/`` and ``eval/``).
        split_file: List of images to evaluate; default ``<widerface_root>/val_holdout.txt``.

    Returns:
        One record per listed image, in the split's order.

    Raises:
        DatasetError: A file is missing or malformed, or an image has no ground truth.
    """
    root = Path(widerface_root)
    if not root.is_dir():
        raise DatasetError(f"WIDER FACE folder not found: {root}", _HINT)
    paths = read_split(split_file if split_file is not None else root / "val_holdout.txt", root)
    text = read_text_ground_truth(root / TEXT_GT)
    mat = read_mat_ground_truth(root)
    records = []
    for rel in paths:
        name = _image_name(rel)
        if name not in text or name not in mat:
            raise DatasetError(f"no ground truth for {rel}", f"list WIDER FACE val images only; {_HINT}")
        mat_boxes, keep_idx = mat[name]
        xywh = align_boxes(name, text[name], mat_boxes)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        keep = {}
        for s, idx in keep_idx.items():
            keep[s] = np.zeros(len(xyxy), bool)
            keep[s][idx] = True
        records.append(GroundTruthImage(rel, xyxy, keep))
    log.info("WIDER FACE ground truth: %d images, faces %s", len(records), count_faces(records))
    return records


def count_faces(ground_truth: list[GroundTruthImage]) -> dict[str, int]:
    """Number of faces per setting (the recall denominators)."""
    return {s: int(sum(r.keep[s].sum() for r in ground_truth)) for s in SETTINGS}


def box_overlaps(boxes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """IoU (n, k) of xyxy `boxes` against `query` with the "+1 pixel" convention (width = x2 - x1 + 1)."""
    b, q = boxes[:, None, :], query[None, :, :]
    iw = np.minimum(b[..., 2], q[..., 2]) - np.maximum(b[..., 0], q[..., 0]) + 1
    ih = np.minimum(b[..., 3], q[..., 3]) - np.maximum(b[..., 1], q[..., 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    area_q = (q[..., 2] - q[..., 0] + 1) * (q[..., 3] - q[..., 1] + 1)
    union = area_b + area_q - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def image_eval(
    boxes: np.ndarray, gt: np.ndarray, keep: np.ndarray, iou_threshold: float = IOU_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's detections, sorted by descending score, to its ground truth.

    Each detection is matched to the box it overlaps most (already matched or not). If the IoU
    reaches `iou_threshold`, a kept box counts as recalled (once) and an ignored box removes the
    detection from the proposals.

    Returns:
        recalled: (n,) number of kept boxes recalled by detections 0..i.
        proposal: (n,) bool, whether detection i counts as a proposal (TP or FP).
    """
    n = len(boxes)
    if n == 0 or len(gt) == 0:
        return np.zeros(n), np.ones(n, bool)
    overlaps = box_overlaps(boxes, gt)
    best = overlaps.argmax(axis=1)
    matched = overlaps[np.arange(n), best] >= iou_threshold
    proposal = ~(matched & ~keep[best])
    hits = matched & keep[best]
    first = np.zeros(n, bool)
    _, first_idx = np.unique(best[hits], return_index=True)
    first[np.flatnonzero(hits)[first_idx]] = True
    return np.cumsum(first).astype(np.float64), proposal


def thresholds(num: int = NUM_THRESHOLDS) -> np.ndarray:
    """Score thresholds 1 - (t + 1) / num for t = 0..num-1 (high to low, last one 0)."""
    return 1 - (np.arange(num) + 1) / num


def img_pr_info(
    scores: np.ndarray, proposal: np.ndarray, recalled: np.ndarray, num: int = NUM_THRESHOLDS
) -> np.ndarray:
    """(num, 2) proposals and recalled faces of one image at each threshold (scores sorted descending)."""
    above = np.searchsorted(-scores, -thresholds(num), side="right")  # detections with score >= t
    cum_prop = np.concatenate([[0.0], np.cumsum(proposal)])
    cum_rec = np.concatenate([[0.0], recalled])
    return np.stack([cum_prop[above], cum_rec[above]], axis=1)


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (VOC style, every recall change counted)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def normalise_scores(predictions: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Min-max normalise scores over all detections (all 1.0 if every score is the same)."""
    scores = {k: np.asarray(v[1], np.float64).reshape(-1) for k, v in predictions.items()}
    nonempty = [s for s in scores.values() if len(s)]
    if not nonempty:
        return scores
    lo, hi = min(s.min() for s in nonempty), max(s.max() for s in nonempty)
    if hi <= lo:
        return {k: np.ones_like(s) for k, s in scores.items()}
    return {k: (s - lo) / (hi - lo) for k, s in scores.items()}


def _prepare(
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]], ground_truth: list[GroundTruthImage]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Predictions of the ground-truth images, normalised scores, sorted by descending score."""
    wanted = {r.path for r in ground_truth}
    preds = {normalise_path(k): v for k, v in predictions.items()}
    extra = set(preds) - wanted
    if extra:
        log.warning("ignoring predictions of %d images not in the ground truth: %s", len(extra), min(extra))
    preds = {k: v for k, v in preds.items() if k in wanted}
    scores = normalise_scores(preds)
    out = {}
    for k, (boxes, _) in preds.items():
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) != len(scores[k]):
            raise ValueError(f"{k}: {len(boxes)} boxes but {len(scores[k])} scores")
        order = np.argsort(-scores[k], kind="stable")
        out[k] = (boxes[order], scores[k][order])
    return out


def evaluate(
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ground_truth: list[GroundTruthImage],
    iou_threshold: float = IOU_THRESHOLD,
    num_thresholds: int = NUM_THRESHOLDS,
) -> dict:
    """Easy/medium/hard AP of `predictions` on `ground_truth` with the official protocol.

    Args:
        predictions: Image path (as in :attr:`GroundTruthImage.path`, a leading ``./`` is allowed) ->
            (xyxy boxes (n, 4) in 640-px pixels, scores (n,)). Images left out have no detections.
        ground_truth: Records from :func:`load_ground_truth`.
        iou_threshold: IoU a detection needs to recall a face.
        num_thresholds: Points of the precision-recall curve.

    Returns:
        ``{"easy": ap, "medium": ap, "hard": ap, "pr": {setting: {"precision": [...],
        "recall": [...]}}, "faces": {setting: count}, "images": n, "detections": n}``.

    Where the official code divides 0 by 0 (no proposals above a threshold) precision is 0 here: such
    points have recall 0 and leave AP unchanged. Equal scores everywhere normalise to 1, not NaN.
    """
    preds = _prepare(predictions, ground_truth)
    empty = (np.zeros((0, 4)), np.zeros(0))
    result: dict = {"pr": {}, "faces": count_faces(ground_truth)}
    for s in SETTINGS:
        counts = np.zeros((num_thresholds, 2))
        for rec in ground_truth:
            boxes, scores = preds.get(rec.path, empty)
            if len(rec.boxes) == 0 or len(boxes) == 0:
                continue  # as the official code: detections on images without boxes are not counted
            recalled, proposal = image_eval(boxes, rec.boxes, rec.keep[s], iou_threshold)
            counts += img_pr_info(scores, proposal, recalled, num_thresholds)
        tp, proposals = counts[:, 1], counts[:, 0]
        precision = np.divide(tp, proposals, out=np.zeros(num_thresholds), where=proposals > 0)
        recall = tp / max(result["faces"][s], 1)
        result[s] = voc_ap(recall, precision)
        result["pr"][s] = {"precision": precision.tolist(), "recall": recall.tolist()}
    result["images"] = len(ground_truth)
    result["detections"] = int(sum(len(v[1]) for v in preds.values()))
    return result


def read_image(path: Path) -> np.ndarray:
    """Decode a BGR uint8 image.

    Raises:
        DatasetError: The file is missing or cannot be decoded.
    """
    image = cv2.imread(str(_require_file(path, "image")), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode image: {path}", "re-create the WIDER FACE images (WebP)")
    return image


def check_images(ground_truth: list[GroundTruthImage], widerface_root: str | Path) -> None:
    """Decode every image once, before any detector runs: a missing or corrupt file fails at once, not after
    the detectors before it have run.

    Raises:
        DatasetError: An image is missing or cannot be decoded.
    """
    for rec in ground_truth:
        read_image(Path(widerface_root) / rec.path)


def run_detector(
    detector: FaceDetector,
    ground_truth: list[GroundTruthImage],
    widerface_root: str | Path,
    warmup: int = 2,
    limit: int | None = None,
) -> tuple[Predictions, float]:
    """Run a FaceDetector on the ground-truth images one at a time and time it.

    Only the ``detector.detect(image)`` call on an already decoded image is timed (batch 1), after
    `warmup` untimed calls on the first image.

    Args:
        detector: A :class:`fer_yolo.detectors.base.FaceDetector`.
        ground_truth: Records from :func:`load_ground_truth`.
        widerface_root: The widerface folder the record paths are relative to.
        warmup: Untimed calls before timing starts.
        limit: Run on the first `limit` images only.

    Returns:
        (predictions for :func:`evaluate`, images per second).
    """
    root = Path(widerface_root)
    records = ground_truth[:limit] if limit is not None else ground_truth
    if records and warmup > 0:
        first = read_image(root / records[0].path)
        for _ in range(warmup):
            detector.detect(first)
    predictions: Predictions = {}
    elapsed = 0.0
    for i, rec in enumerate(records, 1):
        image = read_image(root / rec.path)
        t0 = time.perf_counter()
        dets = detector.detect(image)
        elapsed += time.perf_counter() - t0
        conf = dets.confidence if dets.confidence is not None else np.ones(len(dets), np.float32)
        predictions[rec.path] = (np.asarray(dets.xyxy, np.float64).reshape(-1, 4), np.asarray(conf, float))
        if i % 100 == 0 or i == len(records):
            log.info("%d/%d images, %.2f images/s", i, len(records), i / max(elapsed, 1e-9))
    return predictions, len(records) / elapsed if elapsed > 0 else 0.0
