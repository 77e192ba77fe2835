"""The project's face detector run once over a face dataset, its boxes cached: training crops are then cut
from the box the pipeline would draw, not from the dataset's own tight crop.

Dataset faces (FER2013's 48 px, RAF-DB's aligned 100 px) fill their image, where the detector sees faces in
a scene. Each image is put in the middle of a grey canvas (the letterbox grey) `pad` times its side on
every side first, and the most confident box whose centre lies in the image is kept, in image pixels (it
may reach past the image edges: `square_crop` replicates the border, as for a face at a frame's edge).
Where no box is found (a few tiny or odd crops), the face gets the median box, relative to the image, of
the faces found in the same dataset: FER2013's and RAF-DB's crops are centred on the face, so that is the
box the detector draws on a typical face of that dataset. `found` tells the two apart.

The cache (JSON Lines under `<cache>/faces/`) is keyed by the detector's weights (sha256) and settings
and the dataset folder; it is appended chunk by chunk, so an interrupted pass resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from fer_yolo.data.images import PAD_VALUE
from fer_yolo.utils.io import append_lines, read_jsonl
from fer_yolo.utils.paths import cache_dir

LOGGER = logging.getLogger(__name__)


def best_box(xyxy: np.ndarray, confidence: np.ndarray, w: int, h: int) -> tuple[list[float], float] | None:
    """The most confident box whose centre lies inside a (w, h) image, or None.

    Example:
        >>> best_box(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.5]), 40, 40)
        ([0.0, 0.0, 10.0, 10.0], 0.9)
    """
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    inside = np.flatnonzero((cx >= 0) & (cx <= w) & (cy >= 0) & (cy <= h))
    if not len(inside):
        return None
    i = inside[np.argmax(confidence[inside])]
    return [round(float(v), 2) for v in xyxy[i]], round(float(confidence[i]), 4)


def pad_face(image: np.ndarray, pad: float) -> tuple[np.ndarray, int]:
    """`image` amid a grey canvas, `pad` x its longer side on each side; returns (canvas, offset)."""
    p = int(round(pad * max(image.shape[:2])))
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3), p


def cache_file(key: dict) -> Path:
    """Where the boxes for one (detector, settings, dataset) live."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "faces" / f"{digest}.jsonl"


def detect_dataset_faces(
    images: Sequence[np.ndarray],
    names: Sequence[str],
    detect_batch: Callable[[list[np.ndarray]], list],
    key: dict,
    pad: float = 0.5,
    batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Face boxes of dataset images (BGR or grey uint8), from the cache or from `detect_batch`.

    Args:
        images: The dataset's images, as the training reads them.
        names: A stable name per image (its path relative to the dataset folder): the cache key.
        detect_batch: A FaceDetector's detect_batch.
        key: What makes the boxes what they are (detector weights sha256, settings, dataset folder).
        pad: Grey canvas on each side, as a fraction of the image's longer side.
        batch: Images per detector call.

    Returns:
        (float32 (n, 4) boxes in image pixels, bool (n,) found by the detector; the others hold the
        dataset's median relative box).
    """
    path = cache_file({**key, "pad": pad})
    done = {row["file"]: row for row in read_jsonl(path) if "file" in row}
    # an image of another size under a cached name (a dataset converted again at another size) is new
    sizes = [list(im.shape[1::-1]) for im in images]  # [w, h]
    todo = [i for i, name in enumerate(names) if done.get(name, {}).get("wh") != sizes[i]]
    if todo:
        LOGGER.info("detecting faces in %d of %d images (cache %s)", len(todo), len(names), path)
        with append_lines(path) as out:
            for start in range(0, len(todo), batch):
                chunk = todo[start : start + batch]
                padded = [pad_face(images[i], pad) for i in chunk]
                found = detect_batch([canvas for canvas, _ in padded])
                rows = []
                for i, (_, p), det in zip(chunk, padded, found):
                    h, w = images[i].shape[:2]
                    hit = best_box(det.xyxy - p, det.confidence, w, h) if len(det) else None
                    row = {"file": names[i], "box": hit and hit[0], "conf": hit and hit[1], "wh": [w, h]}
                    rows.append(json.dumps(row))
                    done[names[i]] = row
                out.write("\n".join(rows) + "\n")  # one write per chunk: a kill tears at most the last line
                out.flush()
    boxes = np.zeros((len(names), 4), np.float32)
    found = np.array([done[name]["box"] is not None for name in names], bool)
    rel = []
    for i, name in enumerate(names):
        if found[i]:
            boxes[i] = done[name]["box"]
            w, h = done[name]["wh"]
            rel.append(boxes[i] / [w, h, w, h])
    median = np.median(rel, axis=0) if rel else np.array([0.0, 0.0, 1.0, 1.0])
    for i in np.flatnonzero(~found):
        h, w = images[i].shape[:2]
        boxes[i] = median * [w, h, w, h]
    LOGGER.info(
        "faces found by the detector in %d of %d images (%.1f%%); the others take the median box %s",
        found.sum(),
        len(found),
        100 * found.mean() if len(found) else 0,
        np.round(median, 3).tolist(),
    )
    return boxes, found
