"""FER2013 and other face-crop datasets: image folders and the original fer2013.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from fer_yolo.data.convert.items import Item
from fer_yolo.data.crops import FER2013_PREFIXES, SPLITS
from fer_yolo.data.images import IMAGE_SUFFIXES
from fer_yolo.emotion.labels import EMOTIONS, emotion_id
from fer_yolo.errors import DatasetError

#: fer2013.csv `Usage` column -> split.
CSV_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
_PREFIX_SPLIT = {prefix: split for split, prefix in FER2013_PREFIXES.items()}


def _split_of(file: Path, folder_split: str | None) -> str | None:
    for prefix, split in _PREFIX_SPLIT.items():
        if file.name.startswith(prefix):
            return split
    return folder_split


def list_crop_folders(root: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of a face-crop dataset: [<split>/]<emotion>/*.jpg, every image one face.

    The split comes from FER2013's file-name prefix (Training_, PublicTest_, PrivateTest_), else
    from a train/val/test parent folder, else it is left to the ratio split. Files in folders that
    are not emotion names, and non-image files, are reported as skipped.
    """
    items, skipped = [], []
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in SPLITS + ("valid",)]
    parents = [(d, "val" if d.name == "valid" else d.name) for d in split_dirs] or [(root, None)]
    if split_dirs:  # beside the splits, a folder (or file) that is neither is reported, not passed over
        for other in sorted(p for p in root.iterdir() if p not in split_dirs and not p.name.startswith(".")):
            files = sorted(f for f in other.rglob("*") if f.is_file()) if other.is_dir() else [other]
            where = f"folder {other.name!r}" if other.is_dir() else f"file {other.name!r}"
            skipped += [
                (str(f), f"{where} beside the split folders is not one of {list(SPLITS)}") for f in files
            ]
    for parent, folder_split in parents:
        for class_dir in sorted(p for p in parent.iterdir() if p.is_dir()):
            label = emotion_id(class_dir.name)
            files = (p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
            for file in sorted(files):  # hidden files (temp files of a killed writer, OS files) ignored
                if label is None:
                    skipped.append((str(file), f"folder {class_dir.name!r} is not one of {list(EMOTIONS)}"))
                elif file.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append((str(file), "not an image file name"))
                else:
                    items.append(Item(str(file), "face", _split_of(file, folder_split), label))
    if not items:
        raise DatasetError(f"no labelled face images under {root}", "expected [<split>/]<emotion>/*.jpg")
    return items, skipped


def list_fer2013_csv(path: Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of the original fer2013.csv (columns emotion, pixels, Usage).

    Raises:
        DatasetError: The CSV lacks the emotion or pixels column.
    """
    items, skipped = [], []
    # utf-8-sig: as Excel saves a CSV too; a stray non-UTF-8 byte spoils its row only (skipped, with a reason)
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.DictReader(f)
        if not {"emotion", "pixels"} <= set(reader.fieldnames or []):
            raise DatasetError(f"{path} is not a FER2013 CSV", "expected columns emotion,pixels,Usage")
        for row_no, row in enumerate(reader, start=2):
            source = f"{path}:{row_no}"
            emotion = (row.get("emotion") or "").strip()
            if not emotion.isdigit() or int(emotion) >= len(EMOTIONS):
                skipped.append((source, f"bad emotion value {emotion!r}"))
                continue
            split = CSV_USAGE.get((row.get("Usage") or "").strip())
            items.append(
                Item(
                    source,
                    "face",
                    split,
                    int(emotion),
                    pixels=row["pixels"] or "",
                    key=f"{path.stem}_row{row_no:06d}",
                )
            )
    return items, skipped
