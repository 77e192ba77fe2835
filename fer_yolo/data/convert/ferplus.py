"""FER+ (Barsoum et al. 2016): 10 crowd votes per FER2013 image, as majority or soft labels."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fer_yolo.data.convert.items import Item
from fer_yolo.emotion.labels import EMOTIONS, emotion_id
from fer_yolo.errors import DatasetError

#: label.csv vote columns after the name and the box.
VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
FOLDER_SPLIT = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}
MAPPING_FILE = "ferplus_to_fer2013_jpg.csv"


def votes_to_label(votes: np.ndarray, mode: str) -> tuple[int | None, tuple[float, ...] | None, str]:
    """Turn one image's 10 vote counts into (class id, soft distribution, reason if dropped).

    Images whose top vote is unknown or not-a-face are dropped. Contempt votes are discarded (it
    is not one of the 7 emotions). `majority` keeps an image only when one emotion has more than
    half of the remaining votes; `soft` keeps the vote distribution, filed under its arg-max.
    """
    if votes.sum() == 0 or votes.argmax() >= VOTE_COLUMNS.index("unknown"):
        return None, None, "FER+ voters: unknown or not a face"
    emo = np.zeros(len(EMOTIONS))
    for col, n in zip(VOTE_COLUMNS, votes):
        if emotion_id(col) is not None:  # contempt, unknown and not-a-face have no emotion id
            emo[emotion_id(col)] = n
    if emo.sum() == 0:
        return None, None, "FER+ votes only for contempt"
    label = int(emo.argmax())
    if mode == "majority":
        return (
            (label, None, "") if emo[label] * 2 > emo.sum() else (None, None, "FER+ votes have no majority")
        )
    return label, tuple(float(x) for x in emo / emo.sum()), ""


def mapped_votes(root: Path) -> Iterator[tuple[str, str, str | None, np.ndarray | None]]:
    """Each FER+ image as (label.csv row id, split, FER2013 file relative to its folder or None, votes).

    A row that is not a name, a box and 10 vote counts comes as (label.csv:line, split, None, None).

    Raises:
        DatasetError: The mapping file or every label.csv is missing.
    """
    mapping_path = root / MAPPING_FILE
    if not mapping_path.is_file():
        raise DatasetError(f"FER+ mapping not found: {mapping_path}", f"put {MAPPING_FILE} in {root}")
    with mapping_path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
        try:
            to_jpg = {row["ferplus_png"]: row["fer2013_jpg"] for row in csv.DictReader(f)}
        except KeyError as e:
            raise DatasetError(
                f"{mapping_path} has no {e} column", "expected the columns ferplus_png and fer2013_jpg"
            ) from e
    label_csvs = [(root / folder / "label.csv", split) for folder, split in FOLDER_SPLIT.items()]
    if not any(path.is_file() for path, _ in label_csvs):
        raise DatasetError(f"no FER+ labels under {root}", "expected FER2013{Train,Valid,Test}/label.csv")
    for label_csv, split in label_csvs:
        if label_csv.is_file():
            with label_csv.open(newline="", encoding="utf-8-sig", errors="replace") as f:
                for line, row in enumerate(csv.reader(f), 1):
                    if not row:
                        continue
                    try:
                        votes = np.array([int(v) for v in row[2:12]])
                    except ValueError:
                        votes = None
                    if votes is None or len(votes) != 10:  # reported by the caller, never fatal
                        yield f"{label_csv}:{line}", split, None, None
                        continue
                    yield f"{label_csv}:{row[0]}", split, to_jpg.get(row[0]), votes


def image_votes(root: Path) -> tuple[dict[str, tuple[str, np.ndarray]], list[tuple[str, str]]]:
    """FER2013 file (relative to its folder) -> (split, FER+ votes), and the label.csv rows left unused.

    FER2013 holds some images more than once; FER+ labelled each copy, and the mapping puts identical copies
    on one file (1,074 files, always within one split): their votes are summed, as more annotators of one
    image, so each file is one sample with one label.
    """
    votes: dict[str, tuple[str, np.ndarray]] = {}
    skipped = []
    for row_id, split, jpg, v in mapped_votes(root):
        if v is None:
            skipped.append((row_id, "unreadable label.csv row: expected a name, a box and 10 vote counts"))
        elif jpg is None:
            skipped.append((row_id, "no FER2013 file mapped to this FER+ image"))
        else:
            votes[jpg] = (split, votes[jpg][1] + v) if jpg in votes else (split, v)
    return votes, skipped


def vote_distributions(root: str | Path) -> dict[str, np.ndarray]:
    """FER2013 file (relative to the FER2013 folder, e.g. train/angry/Training_1.jpg) -> FER+ vote
    distribution over the 7 emotions, for every image whose voters saw an emotion."""
    out = {}
    for jpg, (_, votes) in image_votes(Path(root).expanduser())[0].items():
        _, soft, _ = votes_to_label(votes, "soft")
        if soft is not None:
            out[jpg] = np.asarray(soft, np.float32)
    return out


def list_ferplus(root: Path, images: Path, mode: str) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items of FER+ put onto the FER2013 image-folder files via the mapping file, one per file.

    Args:
        root: The ferplus folder (FER2013{Train,Valid,Test}/label.csv and the mapping CSV).
        images: The FER2013 image-folder dataset the mapping points into.
        mode: "majority" or "soft".
    """
    if not images.is_dir():
        raise DatasetError(f"FER2013 images not found: {images}", "pass --images <fer2013 folder>")
    votes, skipped = image_votes(root)
    items = []
    for jpg, (split, v) in votes.items():
        label, soft, reason = votes_to_label(v, mode)
        if label is None:
            skipped.append((str(images / jpg), reason))
        else:
            items.append(Item(str(images / jpg), "face", split, label, soft=soft))
    return items, skipped
