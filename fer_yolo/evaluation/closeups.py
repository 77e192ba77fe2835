"""Close-up faces found: faces that fill half to all of a frame's height, as a webcam shows them.

Two sets, read from the shared data folder (never committed):
- frames: the held-out RAF-DB faces (`datasets/rafdb_val.txt`), each aligned face its whole frame. Found: a
  box at or above `conf` whose centre lies in the frame's middle half and whose area is at least a quarter
  of the frame's (the face's box reaches past the frame edges; it is clipped to them).
- zooms: the faces of `datasets/closeup_faces.csv` (media photos), each cut as a square window in which
  the face is each of `FRACTIONS` of the height, resized to `FRAME` px. Found: a box at or above `conf`
  with IoU >= 0.5 with the face's box carried into the window.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from fer_yolo.data.closeups import fit_inside, zoom_crop, zoom_window
from fer_yolo.data.face_crops import read_list
from fer_yolo.detectors.base import FaceDetector
from fer_yolo.utils.paths import REPO_ROOT

LOGGER = logging.getLogger(__name__)
#: Face height / frame height of the zoomed views, and their size in pixels (square).
FRACTIONS = (0.5, 0.7, 0.85, 1.0)
FRAME = 720
ZOOM_FACES = REPO_ROOT / "datasets" / "closeup_faces.csv"
FRAME_FACES = REPO_ROOT / "datasets" / "rafdb_val.txt"


@dataclass
class CloseupSet:
    """Close-up views to detect: whole-frame faces and zoomed faces with their boxes."""

    frames: list[tuple[str, np.ndarray]] = field(default_factory=list)
    zooms: list[tuple[str, float, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames) + len(self.zooms)


def fills_frame(xyxy: np.ndarray, wh: tuple[int, int]) -> np.ndarray:
    """Which boxes (n, 4) are a frame-filling face: centre in the middle half, area >= a quarter (clipped)."""
    w, h = wh
    clipped = np.clip(np.asarray(xyxy, np.float64).reshape(-1, 4), 0, [w, h, w, h])
    cx, cy = (clipped[:, 0] + clipped[:, 2]) / 2, (clipped[:, 1] + clipped[:, 3]) / 2
    area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    middle = (abs(cx - w / 2) <= w / 4) & (abs(cy - h / 2) <= h / 4)
    return middle & (area >= w * h / 4)


def zoom_views(
    image: np.ndarray, box: np.ndarray, fractions=FRACTIONS, frame: int = FRAME
) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """The face `box` of `image` zoomed to each fraction of a square window: (fraction, view, box)."""
    h, w = image.shape[:2]
    views = []
    for fraction in fractions:
        window = fit_inside(zoom_window(box, fraction), (w, h))
        view, carried = zoom_crop(image, box[None], window, frame)
        if len(carried):
            views.append((fraction, view, carried[0]))
    return views


def load_closeups(data: Path, frame_list: Path = FRAME_FACES, zoom_faces: Path = ZOOM_FACES) -> CloseupSet:
    """The close-up set from `data` (the folder holding rafdb/ and media/); a missing part stays empty, and
    missing or unreadable files are left out with a warning (the score's `views` counts what was read)."""
    out, unread = CloseupSet(), []
    rafdb = data / "rafdb"
    if rafdb.is_dir():
        for name in sorted(read_list(frame_list)):
            image = cv2.imread(str(rafdb / name))
            if image is None:
                unread.append(f"rafdb/{name}")
            else:
                out.frames.append((name, image))
    with zoom_faces.open(newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for i, row in enumerate(rows):
        image = cv2.imread(str(data / "media" / row["file"]))
        if image is None:
            unread.append(f"media/{row['file']}")
            continue
        box = np.array([float(row[k]) for k in ("x1", "y1", "x2", "y2")])
        for fraction, view, carried in zoom_views(image, box):
            out.zooms.append((f"{row['file']} face {i}@{fraction}", fraction, view, carried))
    if unread:
        LOGGER.warning(
            "close-ups: %d files missing or unreadable under %s, e.g. %s", len(unread), data, unread[0]
        )
    return out


def score_closeups(detector: FaceDetector, closeups: CloseupSet, conf: float, batch: int = 16) -> dict:
    """Share of close-up faces found at `conf`, overall, for whole frames and per zoom; misses by name."""
    found: dict[str, bool] = {}
    for start in range(0, len(closeups.frames), batch):
        chunk = closeups.frames[start : start + batch]
        for (name, image), det in zip(chunk, detector.detect_batch([im for _, im in chunk])):
            keep = det.confidence >= conf
            found[name] = bool(fills_frame(det.xyxy[keep], image.shape[1::-1]).any())
    for name, _, view, box in closeups.zooms:
        det = detector.detect(view)
        keep = det.confidence >= conf
        hit = keep.any() and (sv.box_iou_batch(box[None], det.xyxy[keep]) >= 0.5).any()
        found[name] = bool(hit)
    frames = [found[name] for name, _ in closeups.frames]
    result = {
        "found": float(np.mean(list(found.values()))) if found else float("nan"),
        "views": len(found),
        "frames": float(np.mean(frames)) if frames else float("nan"),
    }
    for fraction in sorted({z[1] for z in closeups.zooms}):
        hits = [found[name] for name, f, _, _ in closeups.zooms if f == fraction]
        result[f"zoom_{fraction}"] = float(np.mean(hits))
    result["missed"] = sorted(name for name, hit in found.items() if not hit)
    return result
