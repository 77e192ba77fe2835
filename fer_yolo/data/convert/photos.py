"""Whole photos labelled by folder (<root>/<emotion>/*.jpg, AffectNet style): faces found by a detector."""

from __future__ import annotations

from pathlib import Path

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
