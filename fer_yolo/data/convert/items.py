"""What a converter works on: one Item per source image, plus split and duplicate rules."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_yolo.data.images import BadImage, content_hash, encode_image, read_bytes
from fer_yolo.errors import DatasetError

SPLIT_PRIORITY = {"test": 3, "val": 2, "train": 1}


@dataclass
class Item:
    """One source image and what is known about it.

    Attributes:
        source: File path, or "<csv>:<row>" for pixels read from a CSV.
        kind: "face" (the whole image is one face crop), "photo" (faces must be detected) or
            "scene" (face boxes given in `boxes`).
        split: train, val, test, or None to assign by ratio.
        label: Emotion class id, None where the source has none (WIDER FACE).
        soft: Emotion distribution (7 floats) for soft labels (FER+), else None.
        pixels: FER2013 CSV pixel string (48*48 grey values) instead of a file.
        boxes: Given face boxes, xyxy pixels (scene items).
        key: Unique, file-system-safe stem of this item's outputs (set by `assign_keys`).
        hash: Content digest (set by `hash_items`).
    """

    source: str
    kind: str
    split: str | None = None
    label: int | None = None
    soft: tuple[float, ...] | None = None
    pixels: str | None = None
    boxes: list[list[float]] | None = None
    key: str = ""
    hash: str = ""

    def state(self) -> dict:
        """What its outputs are made from, as the manifest records it: content hash and annotation (a
        changed label, split, vote or box converts the item again, as changed bytes do)."""
        return {
            "hash": self.hash,
            "split": self.split,
            "label": self.label,
            "soft": None if self.soft is None else list(self.soft),
            "boxes": content_hash(json.dumps(self.boxes).encode()) if self.boxes else None,
        }

    def read(self) -> bytes:
        """The image as encoded bytes (CSV pixels are encoded as PNG).

        Raises:
            BadImage: unreadable file or malformed pixel string.
        """
        if self.pixels is None:
            return read_bytes(self.source)
        try:
            values = np.array([int(v) for v in self.pixels.split()], dtype=np.int64)
        except ValueError:
            raise BadImage("pixel string holds a value that is not a whole number") from None
        except OverflowError:  # a run of digits that lost its spaces
            raise BadImage("pixel string holds a value far outside 0-255") from None
        side = int(round(len(values) ** 0.5))
        if side == 0 or side * side != len(values) or values.min() < 0 or values.max() > 255:
            raise BadImage(f"pixel string is not a square grey image ({len(values)} values)")
        return encode_image(values.reshape(side, side).astype(np.uint8), ".png")


def assign_keys(items: list[Item], root: Path) -> None:
    """Give every item without a key an output stem of its own: its file stem and a digest of its path
    relative to `root`, name and extension included.

    `x.jpg` and `x.png` in one folder, or `x.jpg` in two folders, never share outputs, and a key never
    depends on which other files are listed: a folder that gains or loses files between runs resumes with
    the same keys for the files it kept.

    Raises:
        DatasetError: Two items would still share a key (two listings of one file).
    """
    for item in items:
        if not item.key:
            p = Path(item.source)
            try:
                p = p.relative_to(root)
            except ValueError:
                pass
            item.key = f"{p.stem}_{hashlib.sha1(p.as_posix().encode()).hexdigest()[:8]}"
    clashes = [k for k, n in Counter(i.key for i in items).items() if n > 1]
    if clashes:
        raise DatasetError(f"{len(clashes)} inputs listed twice, e.g. {clashes[0]}", "list each file once")


def hash_items(items: list[Item]) -> list[tuple[Item, str]]:
    """Set each item's content hash; return the items that cannot be read, with the reason.

    CSV rows hash their pixel string, files their bytes: byte-identical files share a hash.
    """
    failed = []
    for item in items:
        if item.pixels is not None:
            item.hash = content_hash(item.pixels.strip().encode())
            continue
        try:
            item.hash = content_hash(read_bytes(item.source))
        except BadImage as e:
            failed.append((item, str(e)))
    return failed


def ratio_split(digest: str, ratios: tuple[float, float, float], seed: int) -> str:
    """Deterministic train/val/test choice from a content digest: copies always land together."""
    u = int(hashlib.sha1(f"{seed}:{digest}".encode()).hexdigest()[:12], 16) / 16**12
    if u < ratios[0]:
        return "train"
    return "val" if u < ratios[0] + ratios[1] else "test"


def resolve_duplicates(items: list[Item]) -> tuple[list[Item], dict]:
    """Keep each group of identical images on one side of the split.

    Where copies sit in several splits, only those in the most held-out split survive
    (test over val over train), so no test image is ever trained on. Copies inside one split
    are kept and reported.

    Returns:
        The items kept, and a summary: groups, files in them, conflicting-label groups and the
        removed cross-split copies as (source, kept split).
    """
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.hash].append(item)
    removed, conflicting, dup_groups, dup_files = [], 0, 0, 0
    drop: set[int] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        dup_groups += 1
        dup_files += len(members)
        conflicting += len({m.label for m in members}) > 1
        top = max(SPLIT_PRIORITY[m.split] for m in members)
        for m in members:
            if SPLIT_PRIORITY[m.split] < top:
                drop.add(id(m))
                removed.append(
                    {
                        "source": m.source,
                        "split": m.split,
                        "kept_in": [k for k, v in SPLIT_PRIORITY.items() if v == top][0],
                    }
                )
    kept = [i for i in items if id(i) not in drop]
    summary = {
        "groups": dup_groups,
        "files": dup_files,
        "conflicting_label_groups": conflicting,
        "removed_cross_split": removed,
    }
    return kept, summary
