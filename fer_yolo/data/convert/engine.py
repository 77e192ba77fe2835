"""`fer-yolo convert`: list a dataset's items, settle splits and duplicates, process, report.

Every output file is written atomically, and each finished source image is appended to
<output>/.convert/manifest.jsonl with its content hash, so an interrupted run resumes where it stopped and
a rerun redoes the inputs whose content changed.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from fer_yolo.data.convert.fer2013 import list_crop_folders, list_fer2013_csv
from fer_yolo.data.convert.ferplus import MAPPING_FILE, list_ferplus
from fer_yolo.data.convert.items import Item, assign_keys, hash_items, ratio_split, resolve_duplicates
from fer_yolo.data.convert.photos import MULTI_FACE_POLICIES, list_photos, select_faces
from fer_yolo.data.convert.widerface import find_gt_files, list_widerface
from fer_yolo.data.crop_augment import augmented_copies
from fer_yolo.data.crops import SOFT_LABELS_FILE, SPLITS
from fer_yolo.data.images import BadImage, decode_image, encode_image
from fer_yolo.data.yolo_format import label_lines, write_data_yaml
from fer_yolo.detectors import FaceDetector, build_detector
from fer_yolo.emotion.labels import EMOTIONS, emotion_id
from fer_yolo.emotion.preprocess import square_crop
from fer_yolo.errors import ConfigError, DatasetError
from fer_yolo.utils.io import (
    append_lines,
    atomic_path,
    read_jsonl,
    remove_temporaries,
    write_bytes,
    write_json,
    write_text,
)

LOGGER = logging.getLogger(__name__)
FORMATS = ("fer2013", "fer2013-csv", "ferplus", "photos", "widerface")
STATE_DIR = ".convert"
#: How output names are made (items.assign_keys); a folder made under another scheme is not resumed.
KEY_SCHEME = 2
#: Stems of the augmented copies of a training crop, <name>_aug<k>.png: not counted as crops of their own.
AUGMENTED_STEM = re.compile(r"_aug\d+$")


@dataclass(frozen=True)
class ConvertSettings:
    """The `convert` section of the config (see fer_yolo/cfg/default.yaml for each key)."""

    format: str
    kinds: list
    classes: str
    size: int
    color: bool
    augment: int
    split: str
    ratios: list
    seed: int
    margin: float
    multi_face: str
    detector: str
    min_face: int
    min_box: float
    ferplus_labels: str
    images: str | None
    workers: int

    def check(self) -> None:
        """Raise ConfigError on values out of range."""
        rules = [
            (self.format in FORMATS + ("auto",), f"format must be auto or one of {FORMATS}"),
            (bool(self.kinds) and set(self.kinds) <= {"crops", "yolo"}, "kinds must be crops and/or yolo"),
            (self.classes in ("face", "emotion"), "classes must be face or emotion"),
            (8 <= self.size <= 1024, "size must be 8-1024"),
            (self.augment >= 0, "augment must be >= 0"),
            (self.split in ("keep", "re-split"), "split must be keep or re-split"),
            (
                len(self.ratios) == 3 and min(self.ratios) >= 0 and abs(sum(self.ratios) - 1) < 1e-6,
                "ratios must be three fractions summing to 1",
            ),
            (self.multi_face in MULTI_FACE_POLICIES, f"multi_face must be one of {MULTI_FACE_POLICIES}"),
            (self.detector == "mtcnn", "detector must be mtcnn"),
            (self.ferplus_labels in ("majority", "soft"), "ferplus_labels must be majority or soft"),
            (self.workers >= 0, "workers must be >= 0"),
        ]
        for ok, message in rules:
            if not ok:
                raise ConfigError(f"convert: {message}")


def detect_format(path: Path) -> str:
    """Guess the input format from what is on disk.

    Raises:
        DatasetError: Nothing known was recognised.
    """
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "fer2013-csv"
        if find_gt_files(path):
            return "widerface"
    elif path.is_dir():
        if (path / MAPPING_FILE).is_file():
            return "ferplus"
        if find_gt_files(path):
            return "widerface"
        subdirs = {d.name for d in path.iterdir() if d.is_dir()}
        if subdirs & set(SPLITS):
            return "fer2013"
        if any(emotion_id(d) is not None for d in subdirs):
            return "photos"
    raise DatasetError(f"cannot tell the format of {path}", f"pass --format, one of {FORMATS}")


def list_items(path: Path, fmt: str, s: ConvertSettings) -> tuple[list[Item], list[tuple[str, str]]]:
    """All items of a dataset in the given format, plus files skipped while listing."""
    if fmt == "fer2013":
        return list_crop_folders(path)
    if fmt == "fer2013-csv":
        return list_fer2013_csv(path)
    if fmt == "ferplus":
        images = Path(s.images) if s.images else path.parent / "fer2013"
        return list_ferplus(path, images, s.ferplus_labels)
    if fmt == "photos":
        return list_photos(path)
    return list_widerface(path, Path(s.images) if s.images else None, s.min_box)


class ItemProcessor:
    """Turns one Item into its output files; built once per worker process."""

    def __init__(self, s: ConvertSettings, out: Path) -> None:
        self.s, self.out = s, out
        self._detector = None

    def detector(self) -> FaceDetector:
        if self._detector is None:  # built on first use, inside the worker process
            self._detector = build_detector(self.s.detector, min_face_size=self.s.min_face)
        return self._detector

    def __call__(self, item: Item) -> dict:
        record = {
            "source": item.source,
            "key": item.key,
            **item.state(),
            "outputs": [],
            "skipped": None,
            "note": "",
        }
        try:
            data = item.read()
            image = decode_image(data)
        except BadImage as e:
            record["skipped"] = str(e)
            return record
        h, w = image.shape[:2]
        all_faces = None
        if item.kind == "face":
            boxes = np.array([[0, 0, w, h]], np.float32)
        elif item.kind == "scene":
            boxes = np.asarray(item.boxes, np.float32).reshape(-1, 4)
        else:
            all_faces = self.detector().detect(image)
            faces, record["note"] = select_faces(all_faces, self.s.multi_face)
            if len(faces) == 0:
                record["skipped"] = record["note"] or "no face found"
                return record
            boxes = faces.xyxy
        if "crops" in self.s.kinds and item.label is not None:
            record["outputs"] += self._write_crops(item, image, boxes)
        if "yolo" in self.s.kinds:
            if self.s.classes == "emotion" and all_faces is not None and len(all_faces) > len(boxes):
                record["note"] += "; not in yolo output: the emotion of the other faces is unknown"
            else:
                labelled = all_faces.xyxy if all_faces is not None and self.s.classes == "face" else boxes
                record["outputs"] += self._write_yolo(item, data, labelled, (w, h))
        return record

    def _write_crops(self, item: Item, image: np.ndarray, boxes: np.ndarray) -> list[str]:
        s, written = self.s, []
        folder = Path("crops") / item.split / EMOTIONS[item.label]
        for i, box in enumerate(boxes):
            crop = image if item.kind == "face" else square_crop(image, box, s.margin)
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if not s.color else crop
            if crop.shape[:2] != (s.size, s.size):
                interp = cv2.INTER_AREA if crop.shape[0] > s.size else cv2.INTER_LINEAR
                crop = cv2.resize(crop, (s.size, s.size), interpolation=interp)
            name = item.key if len(boxes) == 1 else f"{item.key}_f{i}"
            copies = [crop] + (
                augmented_copies(crop, s.augment, name, s.seed) if item.split == "train" else []
            )
            for k, img in enumerate(copies):
                rel = folder / (f"{name}.png" if k == 0 else f"{name}_aug{k}.png")
                write_bytes(self.out / rel, encode_image(img, ".png"))
                written.append(str(rel))
        return written

    def _write_yolo(self, item: Item, data: bytes, boxes: np.ndarray, wh: tuple[int, int]) -> list[str]:
        suffix = ".png" if item.pixels is not None else Path(item.source).suffix.lower()
        image_rel = Path("yolo/images") / item.split / f"{item.key}{suffix}"
        label_rel = Path("yolo/labels") / item.split / f"{item.key}.txt"
        classes = np.full(len(boxes), 0 if self.s.classes == "face" else item.label)
        write_bytes(self.out / image_rel, data)
        write_bytes(self.out / label_rel, label_lines(boxes, classes, wh).encode())
        return [str(image_rel), str(label_rel)]


_WORKER: ItemProcessor | None = None


def _init_worker(settings: dict, out: str, threads: int = 1) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(threads)  # pool workers: one thread each, the processes use the cores
    _WORKER = ItemProcessor(ConvertSettings(**settings), Path(out))


def _run_worker(item: Item) -> dict:
    return _WORKER(item)


def _prune(done: dict[str, dict], states: dict[str, dict], out: Path, manifest: Path) -> dict[str, dict]:
    """Delete the outputs of finished items that are no longer listed (their input was removed or renamed
    since the last run), whose input changed (same path, other bytes, or another label, split, vote or
    box: `states` maps each listed key to its `Item.state()`) or one of whose outputs is gone, and drop them
    from the manifest: the folder holds what the report counts, and those inputs are converted again. A field
    a record lacks (an older manifest) is not compared."""
    gone = [k for k in done if k not in states]
    changed = {
        k for k in done if k in states and any(f in done[k] and done[k][f] != v for f, v in states[k].items())
    }
    lost = {  # finished and unchanged, but an output was deleted since
        k
        for k in done
        if k in states and k not in changed and not all((out / o).is_file() for o in done[k]["outputs"])
    }
    if not gone and not changed and not lost:
        return done
    for key in [*gone, *changed, *lost]:
        for rel in done[key]["outputs"]:
            (out / rel).unlink(missing_ok=True)
    redo = changed | lost
    kept = {k: r for k, r in done.items() if k in states and k not in redo}
    write_text(manifest, "".join(json.dumps(r) + "\n" for r in kept.values()))
    if gone:
        LOGGER.warning("%d inputs of the last run are gone: their outputs were removed", len(gone))
    if changed:
        LOGGER.warning("%d inputs changed since the last run: they are converted again", len(changed))
    if lost:
        LOGGER.warning("%d inputs lost outputs since the last run: they are converted again", len(lost))
    return kept


def _check_resume(state: Path, settings: dict) -> None:
    saved = state / "settings.json"
    comparable = {k: v for k, v in settings.items() if k != "workers"}
    if saved.is_file():
        previous = {k: v for k, v in json.loads(saved.read_text()).items() if k != "workers"}
        if previous != comparable:
            changed = sorted(k for k in comparable if previous.get(k) != comparable[k])
            raise ConfigError(
                f"the output folder was made with other settings ({', '.join(changed)})",
                "use a new --output folder, or the same settings to resume",
            )
    else:
        write_json(saved, settings)


def convert(source: str | Path, output: str | Path, settings: ConvertSettings, progress: bool = True) -> dict:
    """Convert a labelled face dataset into an emotion-crop dataset and/or a YOLO dataset.

    Args:
        source: Dataset file or folder (see `detect_format`).
        output: Output folder (crops/, yolo/, report.json); an existing one is resumed.
        settings: The convert settings.
        progress: Show a progress bar.

    Returns:
        The report, also written to <output>/report.json.

    Raises:
        DatasetError: Unknown layout or nothing to convert.
        ConfigError: Bad settings, or an output folder made with other settings.
    """
    t0 = time.time()
    settings.check()
    source, out = Path(source).expanduser(), Path(output).expanduser()
    if not source.exists():
        raise DatasetError(f"input not found: {source}", "check the path")
    fmt = detect_format(source) if settings.format == "auto" else settings.format
    if fmt == "widerface" and (
        settings.classes == "emotion" and "yolo" in settings.kinds or "crops" in settings.kinds
    ):
        raise ConfigError("WIDER FACE has no emotion labels", "use --kind yolo --classes face")
    items, skipped = list_items(source, fmt, settings)
    skipped += [(i.source, reason) for i, reason in hash_items(items)]
    items = [i for i in items if i.hash]
    for item in items:
        if item.split is None or settings.split == "re-split":
            item.split = ratio_split(item.hash, tuple(settings.ratios), settings.seed)
    items, duplicates = resolve_duplicates(items)
    assign_keys(items, source if source.is_dir() else source.parent)

    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    settings_dict = asdict(settings)
    identity = {"format": fmt, "input": str(source.resolve()), "keys": KEY_SCHEME}
    _check_resume(state, settings_dict | identity)
    manifest = state / "manifest.jsonl"
    done = {r["key"]: r for r in read_jsonl(manifest) if "key" in r}
    done = _prune(done, {i.key: i.state() for i in items}, out, manifest)
    if stale := remove_temporaries(out):
        LOGGER.info("removed %d half-written files of the stopped run", stale)
    todo = [i for i in items if i.key not in done]
    LOGGER.info("%s: %d items, %d already done, %d to do", fmt, len(items), len(items) - len(todo), len(todo))
    t1 = time.time()
    with append_lines(manifest) as log:
        for record in tqdm(
            _process_all(todo, settings_dict, out),
            total=len(todo),
            desc="convert",
            disable=not progress,
            unit="img",
        ):
            log.write(json.dumps(record) + "\n")
            log.flush()
            done[record["key"]] = record
    seconds = time.time() - t1
    records = [done[i.key] for i in items if i.key in done]
    if not any(r["outputs"] for r in records):  # a wrong folder, a broken CSV: say so, write no empty dataset
        report = build_report(source, fmt, out, records, skipped, duplicates, settings_dict)
        write_json(out / "report.json", report)
        reasons = Counter(s["reason"] for s in report["skipped"]).most_common(3)
        raise DatasetError(
            f"nothing converted from {source}: none of its {len(items) + len(skipped)} inputs gave an output "
            f"({out / 'report.json'} lists them)",
            "; ".join(f"{n} x {reason}" for reason, n in reasons) or "check the input and --format",
        )
    warnings = []
    if "yolo" in settings.kinds:
        splits = sorted({r["split"] for r in records if any(o.startswith("yolo/") for o in r["outputs"])})
        names = ["face"] if settings.classes == "face" else list(EMOTIONS)
        _, warning = write_data_yaml(out / "yolo", splits, names)
        if warning:
            LOGGER.warning("yolo/data.yaml: %s", warning)
            warnings.append(f"yolo/data.yaml: {warning}")
    if "crops" in settings.kinds and any(r.get("soft") for r in records):
        _write_soft_labels(out / "crops" / SOFT_LABELS_FILE, records)
    report = build_report(source, fmt, out, records, skipped, duplicates, settings_dict)
    report["warnings"] = warnings
    report["seconds"] = round(time.time() - t0, 2)
    report["images_per_s"] = round(len(todo) / seconds, 1) if todo and seconds > 0 else None
    write_json(out / "report.json", report)
    return report


def _write_soft_labels(path: Path, records: list[dict]) -> None:
    """One row per soft-labelled crop: its path under crops/ and its 7 probabilities."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", *EMOTIONS])
        for r in records:
            if r.get("soft"):
                for out in r["outputs"]:
                    if out.startswith("crops/"):
                        w.writerow([Path(out).relative_to("crops").as_posix(), *r["soft"]])


def _process_all(items: list[Item], settings: dict, out: Path):
    if settings["workers"] <= 1 or len(items) < 2:  # in this process: its thread count stays as it is
        import torch

        _init_worker(settings, str(out), torch.get_num_threads())
        yield from map(_run_worker, items)
        return
    chunk = max(1, min(64, len(items) // (settings["workers"] * 8)))
    with ProcessPoolExecutor(
        settings["workers"], initializer=_init_worker, initargs=(settings, str(out))
    ) as pool:
        yield from pool.map(_run_worker, items, chunksize=chunk)


def build_report(
    source: Path,
    fmt: str,
    out: Path,
    records: list[dict],
    skipped: list[tuple[str, str]],
    duplicates: dict,
    settings: dict,
) -> dict:
    """Counts per split and class, skipped files with reasons, duplicates and notes."""
    crops: dict[str, Counter] = {s: Counter() for s in SPLITS}
    yolo_images, yolo_boxes = Counter(), Counter()
    for r in records:
        for o in r["outputs"]:
            parts = Path(o).parts
            if parts[0] == "crops" and not AUGMENTED_STEM.search(Path(o).stem):
                crops[parts[1]][parts[2]] += 1
            elif parts[:2] == ("yolo", "labels"):
                yolo_images[parts[2]] += 1
                yolo_boxes[parts[2]] += (out / o).read_text().count("\n")
    all_skipped = [{"source": s, "reason": r} for s, r in skipped]
    all_skipped += [{"source": r["source"], "reason": r["skipped"]} for r in records if r["skipped"]]
    return {
        "input": str(source),
        "format": fmt,
        "output": str(out),
        "settings": settings,
        "crops": {s: dict(sorted(c.items())) for s, c in crops.items() if c},
        "yolo": {"images": dict(yolo_images), "boxes": dict(yolo_boxes)},
        "converted": sum(1 for r in records if r["outputs"]),
        "skipped": all_skipped,
        "skipped_by_reason": dict(Counter(_reason_kind(s["reason"]) for s in all_skipped)),
        "duplicates": duplicates,
        "notes": [{"source": r["source"], "note": r["note"].lstrip("; ")} for r in records if r["note"]],
    }


def _reason_kind(reason: str) -> str:
    return reason.split(" (")[0]


def format_report(report: dict) -> str:
    """The report as a printed table: crops per split and class, YOLO counts, skips, duplicates."""
    lines = [f"{report['format']}: {report['input']} -> {report['output']}"]
    if report["crops"]:
        lines.append("crops      " + " ".join(f"{e[:8]:>8}" for e in EMOTIONS) + "    total")
        for split, counts in report["crops"].items():
            row = [counts.get(e, 0) for e in EMOTIONS]
            lines.append(f"{split:<10} " + " ".join(f"{n:>8}" for n in row) + f" {sum(row):>8}")
    for split, n in sorted(report["yolo"]["images"].items()):
        lines.append(f"yolo {split:<6} {n} images, {report['yolo']['boxes'][split]} boxes")
    d = report["duplicates"]
    lines.append(
        f"duplicates: {d['groups']} groups of identical images ({d['files']} files), "
        f"{len(d['removed_cross_split'])} cross-split copies removed"
    )
    lines.append(
        f"converted {report['converted']}, skipped {len(report['skipped'])}"
        + "".join(f"\n  {n} x {reason}" for reason, n in report["skipped_by_reason"].items())
    )
    if report.get("images_per_s"):
        lines.append(f"{report['images_per_s']} images/s")
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(lines)
