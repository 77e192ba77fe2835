"""Emotion-crop datasets on disk: <root>/<split>/<emotion>/*.{png,jpg}, read into memory.

Two layouts are understood:
- fer-yolo's own (`fer-yolo convert` output): train/, val/, test/ folders;
- FER2013's image-folder layout: train/ and test/, the official split in the file-name prefix
  (Training_*, PublicTest_* = validation, PrivateTest_* = test).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_yolo.data.images import IMAGE_SUFFIXES
from fer_yolo.emotion.labels import EMOTIONS, emotion_id
from fer_yolo.emotion.preprocess import resize_face
from fer_yolo.errors import DatasetError, MissingSplit

LOGGER = logging.getLogger(__name__)

#: FER2013 file-name prefix of each split.
FER2013_PREFIXES = {"train": "Training_", "val": "PublicTest_", "test": "PrivateTest_"}
SPLITS = ("train", "val", "test")


@dataclass
class CropSet:
    """Face crops of one split held in memory.

    Attributes:
        images: uint8 (n, size, size, chans).
        labels: int64 (n,) class ids into EMOTIONS.
        paths: n source file paths.
        skipped: (path, reason) for files that could not be used.
        soft: float32 (n, 7) label distributions (FER+ votes) where the dataset has them, else None.
        source_size: Median side of the crops as stored (before resizing); 0 when there are none.
    """

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    soft: np.ndarray | None = None
    source_size: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> CropSet:
        """The crops where boolean mask or index array `keep` selects them."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        soft = None if self.soft is None else self.soft[idx]
        paths = [self.paths[i] for i in idx]
        return CropSet(self.images[idx], self.labels[idx], paths, self.skipped, soft, self.source_size)

    def pixel_hashes(self) -> list[bytes]:
        """A digest of each crop's pixels: equal digests mean identical images."""
        return [hashlib.blake2b(im.tobytes(), digest_size=16).digest() for im in self.images]


def relative_paths(paths: list[str], root: str | Path) -> list[str]:
    """Each file path relative to dataset folder `root`, with forward slashes."""
    return [Path(p).relative_to(root).as_posix() for p in paths]


def is_fer2013_layout(root: Path) -> bool:
    """True for FER2013's folders: no val/, and test/ holds PublicTest_/PrivateTest_ files."""
    test = root / "test"
    return not (root / "val").is_dir() and test.is_dir() and any(test.glob("*/P*Test_*"))


def split_files(root: str | Path, split: str) -> list[tuple[Path, int]]:
    """List (file, class id) of one split, in sorted order.

    Raises:
        MissingSplit: The folder has no such split (FER2013's layout: no file of its prefix).
        DatasetError: An unknown split name, or a split folder with no labelled images in it.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}", f"choose one of {SPLITS}")
    if split != "train" and is_fer2013_layout(root):
        folder, prefix = root / "test", FER2013_PREFIXES[split]
    elif (root / split).is_dir():
        folder, prefix = root / split, ""
    else:
        raise MissingSplit(
            f"{root} has no {split!r} split",
            "expected <root>/{train,val,test}/<emotion>/*.png or FER2013's train/ and test/ folders",
        )
    files = labelled_files(folder, prefix)
    if not files:  # FER2013's test/ may hold one of its two splits only; a split folder must hold images
        error = MissingSplit if prefix else DatasetError
        raise error(f"no images found for split {split!r} under {folder}", "check --data")
    return files


def labelled_files(folder: Path, prefix: str = "") -> list[tuple[Path, int]]:
    """(image, class id) of `<folder>/<emotion>/<prefix>*`, sorted; folders that are not emotion names are
    passed over with a warning, hidden files (a killed writer's temp files, OS files) ignored."""
    files = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        cid = emotion_id(class_dir.name)
        if cid is None:
            LOGGER.warning("ignoring folder %s: not an emotion name", class_dir)
            continue
        files += [
            (f, cid)
            for f in sorted(class_dir.iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES and f.name.startswith(prefix) and not f.name.startswith(".")
        ]
    return files


def _decode(path: Path, in_chans: int) -> np.ndarray | None:
    """An image file as uint8 (h, w) grey or (h, w, 3) RGB, or None if it is missing or cannot be decoded."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:  # gone, or a folder: skipped and listed like an undecodable file
        return None
    flag = cv2.IMREAD_GRAYSCALE if in_chans == 1 else cv2.IMREAD_COLOR
    img = cv2.imdecode(data, flag) if data.size else None
    return img if img is None or in_chans == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_crop(path: Path, size: int, in_chans: int, source_size: int = 0) -> np.ndarray | None:
    """Read an image as uint8 (size, size, in_chans), or None if it cannot be decoded.

    `source_size` limits its sharpness as for a model's input (see emotion.preprocess.resize_face).
    """
    img = _decode(path, in_chans)
    return None if img is None else resize_face(img, size, source_size).reshape(size, size, in_chans)


def load_crops(
    root: str | Path, split: str, size: int = 48, in_chans: int = 1, source_size: int = 0
) -> CropSet:
    """Read a split of a crop dataset into memory, skipping unreadable files.

    Args:
        root: Dataset folder (fer-yolo or FER2013 layout).
        split: train, val or test.
        size: Side the crops are resized to.
        in_chans: 1 for grey, 3 for RGB.
        source_size: Larger crops are first reduced to this side (0: no limit), as a model's input is.

    Returns:
        The split's crops; `skipped` lists files that could not be decoded.
    """
    crops = read_crops(split_files(root, split), size, in_chans, f"{root}/{split}", source_size)
    crops.soft = read_soft_labels(root, crops.paths)
    return crops


def read_crops(
    files: list[tuple[Path, int]], size: int, in_chans: int, where: str, source_size: int = 0
) -> CropSet:
    """Read (path, class id) pairs into memory, skipping (and listing) unreadable files.

    Args:
        files: Image files and their class ids into EMOTIONS.
        size: Side the crops are resized to.
        in_chans: 1 for grey, 3 for RGB.
        where: Names the set in the warning about skipped files.
        source_size: Larger crops are first reduced to this side (0: no limit), as a model's input is.

    Raises:
        DatasetError: Files were named and none of them could be read (before any work is done on them).
    """
    images = np.empty((len(files), size, size, in_chans), np.uint8)
    labels, paths, skipped, sides = [], [], [], []
    for path, cid in files:
        img = _decode(path, in_chans)
        if img is None:
            skipped.append((str(path), "cannot read or decode image"))
            continue
        sides.append(max(img.shape[:2]))
        images[len(labels)] = resize_face(img, size, source_size).reshape(size, size, in_chans)
        labels.append(cid)
        paths.append(str(path))
    if files and not labels:
        raise DatasetError(
            f"{where}: none of its {len(files)} images can be read (e.g. {skipped[0][0]})",
            "check the files: Git LFS pointers not pulled (git lfs pull), an interrupted copy, or not images",
        )
    if skipped:
        LOGGER.warning("%s: skipped %d unreadable files", where, len(skipped))
    source = int(np.median(sides)) if sides else 0
    return CropSet(images[: len(labels)], np.asarray(labels, np.int64), paths, skipped, source_size=source)


#: Per-crop label distributions written by `fer-yolo convert --ferplus-labels soft`, beside the splits.
SOFT_LABELS_FILE = "soft_labels.csv"


def read_soft_labels(root: str | Path, paths: list[str]) -> np.ndarray | None:
    """float32 (n, 7) distributions for `paths` from <root>/soft_labels.csv, or None if there is none.

    Crops the file does not list get their one-hot folder label.

    Raises:
        DatasetError: The file exists but is malformed.
    """
    path = Path(root) / SOFT_LABELS_FILE
    if not path.is_file():
        return None
    table = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                table[row["path"]] = [float(row[e]) for e in EMOTIONS]
            except (KeyError, TypeError, ValueError) as e:
                raise DatasetError(
                    f"{path}: bad row {row}: {e}", f"columns: path,{','.join(EMOTIONS)}"
                ) from e
    soft = np.zeros((len(paths), len(EMOTIONS)), np.float32)
    for i, (p, rel) in enumerate(zip(paths, relative_paths(paths, root))):
        if rel in table:
            soft[i] = table[rel]
        else:
            soft[i, emotion_id(Path(p).parent.name)] = 1.0
    return soft


def is_grey(images: np.ndarray, chunk: int = 1024) -> bool:
    """True when every uint8 crop (n, h, w, c) has equal channels: grey faces, also when stored as RGB."""
    chunks = (images[i : i + chunk] for i in range(0, len(images), chunk))
    return all((c == c[..., :1]).all() for c in chunks)


def drop_leaks(train: CropSet, *others: CropSet) -> tuple[CropSet, int]:
    """Remove from `train` every crop identical to one in `others`, and every blank crop.

    FER2013 holds byte-identical images on both sides of its split: training on them inflates test
    accuracy. Blank (constant) crops carry no face.

    Returns:
        The cleaned training set and how many crops were removed.
    """
    held_out = {h for s in others for h in s.pixel_hashes()}
    flat = train.images.reshape(len(train), -1)
    blank = flat.min(axis=1) == flat.max(axis=1)
    keep = np.array([h not in held_out for h in train.pixel_hashes()]) & ~blank
    return train.subset(keep), int((~keep).sum())
