"""Whole photos labelled by folder (<root>/<emotion>/*.jpg, AffectNet style): faces found by a detector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import supervision as sv

from fer_yolo.data.convert.fer2013 import list_crop_folders
from fer_yolo.data.convert.items import Item

#: What to do with a photo in which the detector finds several faces.
MULTI_FACE_POLICIES = ("largest", "skip", "all")


def list_photos(root: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of a folder-labelled photo dataset (same layout rules as face-crop folders)."""
    items, skipped = list_crop_folders(root)
    for item in items:
        item.kind = "photo"
    return items, skipped


def select_faces(faces: sv.Detections, policy: str) -> tuple[sv.Detections, str]:
    """Apply the multi-face policy; returns the faces kept and a note for the report ("" if none).

    - largest: keep the largest face (the photo's subject) and note how many others were seen;
    - skip: drop photos with several faces (the label cannot be attached to one of them);
    - all: keep every face, each with the folder's label.
    """
    if len(faces) <= 1 or policy == "all":
        return faces, ""
    if policy == "skip":
        return faces[np.zeros(len(faces), bool)], f"{len(faces)} faces found (policy skip)"
    return faces[[int(faces.area.argmax())]], f"kept the largest of {len(faces)} faces"


def square_crop(image: np.ndarray, xyxy: np.ndarray, margin: float) -> np.ndarray:
    """A square crop centred on a face box, its side max(w, h) * (1 + 2 * margin).

    Parts outside the image are filled by replicating the border, so the face stays centred.
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(int(round(side)), 1)
    h, w = image.shape[:2]
    pad = max(0, -left, -top, left + s - w, top + s - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return image[top + pad : top + pad + s, left + pad : left + pad + s]
