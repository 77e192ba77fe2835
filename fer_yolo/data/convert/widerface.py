"""WIDER FACE ground truth in the official text format (wider_face_{split}_bbx_gt.txt)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fer_yolo.data.convert.items import Item
from fer_yolo.errors import ConfigError, DatasetError

GT_PATTERN = re.compile(r"wider_face_(train|val|test)_bbx_gt\.txt$")


def parse_wider_gt(path: Path) -> list[tuple[str, np.ndarray]]:
    """Read an official WIDER FACE ground-truth file.

    Each record is a relative image path, a face count, then one line per face:
    `x y w h blur expression illumination invalid occlusion pose` (an image with no face still has
    one all-zero line).

    Returns:
        (relative image path, float64 (n, 10) rows as in the file) per image, in file order.

    Raises:
        DatasetError: The file does not follow the format.
    """
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    records, i = [], 0
    try:
        while i < len(lines):
            if not lines[i]:
                i += 1
                continue
            name, n = lines[i], int(lines[i + 1])
            rows = [[float(v) for v in line.split()[:10]] for line in lines[i + 2 : i + 2 + n]]
            i += 2 + n
            if n == 0 and i < len(lines) and len(lines[i].split()) >= 4:
                i += 1  # an image without faces still has one all-zero line
            records.append((name, np.asarray(rows, np.float64).reshape(-1, 10)))
    except (ValueError, IndexError) as e:
        raise DatasetError(
            f"{path}:{i + 1}: not WIDER FACE ground truth ({e})", "pass wider_face_*_bbx_gt.txt"
        ) from e
    return records


def find_gt_files(root: Path) -> list[Path]:
    """wider_face_*_bbx_gt.txt files: `root` itself, or those up to two folders below it."""
    if root.is_file():
        return [root] if GT_PATTERN.search(root.name) else []
    return sorted(
        p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern) if GT_PATTERN.search(p.name)
    )


def images_dir_for(gt: Path, images: Path | None) -> Path:
    """The folder the ground truth's relative paths start from: --images, else <gt folder>/images."""
    folder = images or gt.parent / "images"
    if not folder.is_dir():
        raise DatasetError(f"WIDER FACE images not found for {gt}: {folder}", "pass --images <images folder>")
    return folder


#: fer-yolo's WIDER FACE copy lists its evaluation-only images here, beside the train/ and val/ folders.
HOLDOUT_LIST = "val_holdout.txt"


def held_out_images(gt: Path) -> set[Path]:
    """Images a HOLDOUT_LIST next to the ground truth's split folder (or in it) keeps for evaluation only."""
    for folder in (gt.parent, gt.parent.parent):
        if (listing := folder / HOLDOUT_LIST).is_file():
            lines = (ln.strip() for ln in listing.read_text().splitlines())
            return {(folder / ln).resolve() for ln in lines if ln}
    return set()


def list_widerface(
    root: Path, images: Path | None, min_size: float
) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items for every image of every ground-truth file found; boxes smaller than min_size px dropped.

    A file given by any other name is read as ground truth too; its images get the ratio split. Images in a
    `val_holdout.txt` beside the data are left out (and listed as skipped): they are for `eval` only.

    Raises:
        DatasetError: No ground truth, or its images are missing.
        ConfigError: --images with several ground-truth files (each has its own images folder).
    """
    gts = [root] if root.is_file() else find_gt_files(root)
    if not gts:
        raise DatasetError(
            f"no wider_face_*_bbx_gt.txt under {root}", "pass the ground-truth file or its folder"
        )
    if images is not None and len(gts) > 1:
        raise ConfigError(
            f"--images given, but {len(gts)} ground-truth files were found under {root}",
            "pass one wider_face_*_bbx_gt.txt with its --images, or no --images (<gt folder>/images)",
        )
    items: list[Item] = []
    skipped: list[tuple[str, str]] = []
    for gt in gts:
        folder = images_dir_for(gt, images)
        split = match.group(1) if (match := GT_PATTERN.search(gt.name)) else None
        held_out = held_out_images(gt)
        for name, rows in parse_wider_gt(gt):
            path = folder / name
            if held_out and path.resolve() in held_out:
                skipped.append((str(path), f"held out for evaluation ({HOLDOUT_LIST})"))
                continue
            keep = (rows[:, 2] >= min_size) & (rows[:, 3] >= min_size)
            xyxy = np.concatenate([rows[keep, :2], rows[keep, :2] + rows[keep, 2:4]], axis=1)
            items.append(Item(str(path), "scene", split, boxes=xyxy.tolist()))
    return items, skipped
