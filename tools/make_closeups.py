"""Write a close-up face detection set beside WIDER FACE, and the data.yaml that trains on both.

Two kinds of close-ups, each image written once (a rerun keeps what is there, so it resumes):
- zoom windows (`fer_yolo.data.closeups`) of the WIDER training images, one per image with a face at least
  `--min-face` px high: that face's height is 0.3-1.0 of the window's (uniform), the window square, 4:3
  or 16:9, the face anywhere in it; every labelled box is carried over; longer side `--size` px;
- RAF-DB's aligned faces, each image a frame filled by one face, labelled with the box the shipped detector
  draws on it amid a grey canvas (`fer_yolo.data.face_boxes`, the boxes the emotion head learns from;
  faces it does not find are left out). The files of `datasets/rafdb_val.txt` are left out too: they
  stay unseen, for the close-up evaluation.

The windows and picks follow from `--seed` and the file names alone.

    python tools/make_closeups.py --out ~/.cache/fer-yolo/datasets/closeups
    fer-yolo train detector --config configs/face_yolo11n_320_closeups.yaml
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np
import yaml

from fer_yolo.data.closeups import fit_inside, zoom_crop, zoom_window
from fer_yolo.data.crops import split_files
from fer_yolo.data.face_boxes import detect_dataset_faces
from fer_yolo.data.face_crops import FaceBoxer, read_list
from fer_yolo.data.yolo_format import label_lines
from fer_yolo.utils.io import atomic_path, write_text
from fer_yolo.utils.paths import REPO_ROOT, cache_dir, data_root

ASPECTS = (1.0, 4 / 3, 16 / 9)


def rng_for(name: str, seed: int) -> np.random.Generator:
    """A generator that depends on the seed and the name only (reruns draw the same)."""
    return np.random.default_rng([seed, int(hashlib.sha1(name.encode()).hexdigest()[:12], 16)])


def list_images(list_file: Path) -> list[Path]:
    """The images of an ultralytics list file (lines relative to its folder)."""
    lines = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
    return [(list_file.parent / ln).resolve() for ln in lines]


def yolo_boxes(image_path: Path, wh: tuple[int, int]) -> np.ndarray:
    """xyxy pixel boxes of an image's YOLO label file (images/ -> labels/, .txt)."""
    parts = list(image_path.parts)
    parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
    label = Path(*parts).with_suffix(".txt")
    rows = np.loadtxt(label, ndmin=2) if label.is_file() and label.stat().st_size else np.zeros((0, 5))
    w, h = wh
    xc, yc, bw, bh = rows[:, 1] * w, rows[:, 2] * h, rows[:, 3] * w, rows[:, 4] * h
    return np.stack([xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2], axis=1)


def write_example(out: Path, name: str, image: np.ndarray, boxes: np.ndarray) -> Path:
    """images/<name>.jpg and labels/<name>.txt under `out`, each written atomically, label first."""
    image_path = out / "images" / f"{name}.jpg"
    h, w = image.shape[:2]
    write_text(out / "labels" / f"{name}.txt", label_lines(boxes, np.zeros(len(boxes)), (w, h)))
    image_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(image_path) as tmp:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        tmp.write_bytes(data.tobytes())
    return image_path


def wider_windows(images: list[Path], out: Path, seed: int, min_face: int, size: int) -> list[Path]:
    written = []
    for path in images:
        name = f"wider/{path.parent.name}/{path.stem}"
        if (out / "images" / f"{name}.jpg").is_file():
            written.append(out / "images" / f"{name}.jpg")
            continue
        image = cv2.imread(str(path))
        if image is None:
            continue
        h, w = image.shape[:2]
        boxes = yolo_boxes(path, (w, h))
        big = np.flatnonzero(boxes[:, 3] - boxes[:, 1] >= min_face)
        if not len(big):
            continue
        rng = rng_for(name, seed)
        face = boxes[rng.choice(big)]
        window = zoom_window(
            face, rng.uniform(0.3, 1.0), ASPECTS[rng.integers(len(ASPECTS))], tuple(rng.uniform(-1, 1, 2))
        )
        crop, carried = zoom_crop(image, boxes, fit_inside(window, (w, h)), size)
        written.append(write_example(out, name, crop, carried))
    return written


def rafdb_frames(root: Path, out: Path, held_out: set[str], count: int, seed: int) -> list[Path]:
    files = sorted(p.relative_to(root).as_posix() for p, _ in split_files(root, "train"))
    files = [f for f in files if f not in held_out]
    files = sorted(files, key=lambda f: rng_for(f, seed).random())[:count]
    read = [(f, cv2.imread(str(root / f))) for f in files]
    files, images = [f for f, im in read if im is not None], [im for _, im in read if im is not None]
    boxer = FaceBoxer()
    boxes, found = detect_dataset_faces(images, files, boxer.detector.detect_batch, boxer.key(root))
    written = []
    for f, image, box, hit in zip(files, images, boxes, found):
        if hit:
            written.append(write_example(out, f"rafdb/{Path(f).stem}", image, box[None]))
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widerface", type=Path, help="widerface folder (default <data>/widerface)")
    ap.add_argument("--rafdb", type=Path, help="RAF-DB folder (default <data>/rafdb)")
    ap.add_argument("--held-out", type=Path, default=REPO_ROOT / "datasets" / "rafdb_val.txt")
    ap.add_argument("--out", type=Path, default=cache_dir() / "datasets" / "closeups")
    ap.add_argument("--rafdb-count", type=int, default=1500, help="RAF-DB faces drawn")
    ap.add_argument("--min-face", type=int, default=48, help="smallest WIDER face zoomed into, px high")
    ap.add_argument("--size", type=int, default=640, help="longer side of a zoom window, px")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    wider = args.widerface or data_root() / "widerface"
    rafdb = args.rafdb or data_root() / "rafdb"
    train_lists = [wider / "train_subset.txt", wider / "val_fit.txt"]
    sources = [p for lst in train_lists for p in list_images(lst)]
    written = wider_windows(sources, args.out, args.seed, args.min_face, args.size)
    n_wider = len(written)
    written += rafdb_frames(rafdb, args.out, read_list(args.held_out), args.rafdb_count, args.seed)
    write_text(args.out / "train.txt", "".join(f"{p}\n" for p in written))
    data = {
        "train": [str(p.resolve()) for p in train_lists] + [str((args.out / "train.txt").resolve())],
        "val": str((wider / "val_select.txt").resolve()),
        "names": {0: "face"},
    }
    write_text(args.out / "data.yaml", yaml.safe_dump(data, sort_keys=False))
    print(f"{n_wider} zoom windows, {len(written) - n_wider} RAF-DB frames: {args.out / 'data.yaml'}")


if __name__ == "__main__":
    main()
