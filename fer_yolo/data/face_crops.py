"""Training faces cut from the project's detector boxes, the way the pipeline cuts them.

Each dataset image is kept whole, at its own size; the shipped face detector runs over it once (cached,
`data.face_boxes`), and every training step cuts each face again from its box through the pipeline's own
function (`Preprocess.face_inputs`: box -> margin -> square crop -> resize -> colour) with a margin drawn
from `margin_range` and the box jittered (centre and side), so that the head learns the crops it will be
shown at any margin a user sets. Validation faces are cut once at the pipeline's margin, without jitter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from fer_yolo.config import defaults
from fer_yolo.data.crops import CropSet, drop_leaks, load_crops, relative_paths, split_files
from fer_yolo.data.face_boxes import detect_dataset_faces
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.errors import DatasetError, MissingSplit
from fer_yolo.utils.io import file_digest
from fer_yolo.utils.paths import default_weights

LOGGER = logging.getLogger(__name__)


@dataclass
class FaceImages:
    """Whole dataset images with the detector's face box for each.

    Attributes:
        images: BGR (h, w, 3) or grey (h, w) uint8 images at their own size.
        boxes: float32 (n, 4) face boxes in image pixels.
        found: bool (n,) box found by the detector (else the dataset's median box).
        labels: int64 (n,) class ids into EMOTIONS.
    """

    images: list[np.ndarray]
    boxes: np.ndarray
    found: np.ndarray
    labels: np.ndarray

    @classmethod
    def concat(cls, parts: list[FaceImages]) -> FaceImages:
        return cls(
            [im for p in parts for im in p.images],
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.found for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.images)

    def inputs(self, pre: Preprocess, idx: np.ndarray, margins: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """uint8 model inputs (n, s, s, c) of images `idx`, cut from `boxes` with `margins`."""
        s, c = pre.input_size, pre.in_chans
        out = np.empty((len(idx), s, s, c), np.uint8)
        for k, (i, box, m) in enumerate(zip(idx, boxes, margins)):
            out[k] = pre.face_inputs(self.images[i], box[None], m)[0]
        return out

    def fixed_inputs(self, pre: Preprocess, margin: float) -> np.ndarray:
        """Every face cut from its box at one margin, as the pipeline would."""
        idx = np.arange(len(self))
        return self.inputs(pre, idx, np.full(len(self), margin), self.boxes)


def jitter_boxes(boxes: np.ndarray, amount: float, u: np.ndarray) -> np.ndarray:
    """Boxes with centre moved and size changed by up to `amount` of their side; `u` (n, 3) in [0, 1).

    Example:
        >>> jitter_boxes(np.array([[0.0, 0, 10, 20]]), 0.1, np.full((1, 3), 0.5)).tolist()  # u = 0.5: same
        [[0.0, 0.0, 10.0, 20.0]]
    """
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + (2 * u[:, 0] - 1) * amount * side
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + (2 * u[:, 1] - 1) * amount * side
    scale = 1 + (2 * u[:, 2] - 1) * amount
    return np.stack([cx - w * scale / 2, cy - h * scale / 2, cx + w * scale / 2, cy + h * scale / 2], 1)


def native_format(root: str | Path, split: str = "train") -> tuple[int, int]:
    """(side, channels) of a dataset's first image: the size its images are held at (grey: 1 channel)."""
    path = split_files(root, split)[0][0]
    img = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot decode {path}", "check the dataset")
    return max(img.shape[:2]), 1 if img.ndim == 2 else 3


def read_list(path: str | Path) -> set[str]:
    """Relative paths listed one per line ('#' comments and blank lines ignored)."""
    lines = Path(path).expanduser().read_text().splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def split_by_list(crops: CropSet, root: str | Path, held_out: set[str]) -> tuple[CropSet, CropSet]:
    """(the crops not listed, the listed crops) of one split.

    Raises:
        DatasetError: The list names files the split does not have.
    """
    rel = relative_paths(crops.paths, root)
    listed = np.array([r in held_out for r in rel], bool)
    missing = held_out - set(rel)
    if missing:
        raise DatasetError(
            f"{len(missing)} listed validation files are not in {root}, e.g. {sorted(missing)[0]}",
            "the list must name files of this dataset (train/<emotion>/<file>)",
        )
    return crops.subset(~listed), crops.subset(listed)


class FaceBoxer:
    """The pipeline's YOLO detector, made on first use, for the cached pass.

    Args:
        settings: A `pipeline` config section: its detector_weights, imgsz, low_conf, iou and backend
            (None: the shipped defaults).
    """

    def __init__(self, settings: Mapping | None = None) -> None:
        self._detector = None
        self.settings = settings or defaults()["pipeline"]

    @property
    def detector(self):
        if self._detector is None:
            from fer_yolo.detectors.yolo import YoloFaceDetector

            p = self.settings
            self._detector = YoloFaceDetector(
                p["detector_weights"] or None, p["imgsz"], p["low_conf"], p["iou"], backend=p["backend"]
            )
        return self._detector

    def key(self, root: str | Path) -> dict:
        p = self.settings
        weights = p["detector_weights"] or default_weights("detector")
        return {
            "weights": file_digest(Path(weights).expanduser()),
            "imgsz": p["imgsz"],
            "conf": p["low_conf"],
            "iou": p["iou"],
            "root": str(Path(root).expanduser().resolve()),
        }

    def faces(self, crops: CropSet, root: str | Path) -> FaceImages:
        """The crops' images (as read at their own size) with a detector box for each."""
        images = [
            im[..., 0] if im.shape[-1] == 1 else np.ascontiguousarray(im[..., ::-1]) for im in crops.images
        ]
        names = relative_paths(crops.paths, root)
        boxes, found = detect_dataset_faces(
            images, names, lambda b: self.detector.detect_batch(b), self.key(root)
        )
        return FaceImages(images, boxes, found, crops.labels)


def load_split_faces(
    boxer: FaceBoxer, root: str, val_list: str = ""
) -> tuple[CropSet, FaceImages, FaceImages | None]:
    """A dataset's training crops as read (labels, paths, soft labels), training faces and validation faces.

    Validation is the dataset's own val split, or the files of `val_list` taken out of its train split.
    Training images identical to a held-out one, and blank ones, are removed (`drop_leaks`).
    """
    side, chans = native_format(root)
    train = load_crops(root, "train", side, chans)
    held: list[CropSet] = []
    val = None
    if val_list:
        train, val = split_by_list(train, root, read_list(val_list))
    for split in ("val", "test"):
        try:
            crops = load_crops(root, split, side, chans)
        except MissingSplit:
            continue
        held.append(crops)
        if split == "val" and val is None:
            val = crops
    train, removed = drop_leaks(train, *([val] if val is not None else []), *held)
    LOGGER.info(
        "%s: %d training images (%d duplicates of held-out images or blank removed), %d validation",
        root,
        len(train),
        removed,
        len(val) if val is not None else 0,
    )
    return train, boxer.faces(train, root), boxer.faces(val, root) if val is not None else None


def draw_margins(n: int, margin_range: tuple[float, float]) -> np.ndarray:
    """Margins drawn uniformly in `margin_range` from torch's generator (resumed runs draw the same)."""
    lo, hi = margin_range
    return (lo + (hi - lo) * torch.rand(n, dtype=torch.float64)).numpy()
