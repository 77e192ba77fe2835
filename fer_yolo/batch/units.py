"""The units of a batch run: sources named on the command line, cut into pieces of work.

A unit is one video, one time segment of a long video (`segment_s`), or the images of one folder. Its id
depends only on what it covers (file, size, frame range; the folder's image names), so the same command
plans the same units again and a rerun can tell finished ones from the rest.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2

from fer_yolo.config import default_of
from fer_yolo.data.images import IMAGE_SUFFIXES
from fer_yolo.runner import unique_name
from fer_yolo.sources import evenly_timed, known_fps, safe_stem

LOGGER = logging.getLogger(__name__)
#: The run's own tables (faces.parquet, faces.csv, sources.csv): no source's outputs take these names.
FACES_TABLE, SOURCES_TABLE = "faces", "sources"


@dataclass(frozen=True)
class Unit:
    """One piece of work: a video, a segment of one, or a folder's images.

    Attributes:
        id: Stable id (folder name under OUT/units/).
        source: The video file or image folder it belongs to.
        stem: Output stem of its source, unique within the run (OUT/<stem>.jsonl...).
        kind: "video" or "images".
        start_frame: First frame (videos).
        end_frame: Frame after the last one (videos; None: to the end of the file).
        images: The image files (image folders), in order.
        expected_frames: Frames it should yield (a folder's images; a video's frame count from its header,
            divided by vid_stride), None where the header tells none. Schedules units, never identifies them.
    """

    id: str
    source: str
    stem: str
    kind: str
    start_frame: int = 0
    end_frame: int | None = None
    images: tuple[str, ...] = ()
    expected_frames: int | None = None

    def to_dict(self) -> dict:
        """What the manifest lists (images by count, not by name)."""
        out = {"id": self.id, "source": self.source, "stem": self.stem, "kind": self.kind}
        if self.kind == "video":
            return out | {"start_frame": self.start_frame, "end_frame": self.end_frame}
        return out | {"images": len(self.images)}


def plan_units(
    files: list[Path], segment_s: float | None = None, vid_stride: int | None = None
) -> list[Unit]:
    """Units for `files`: each video (cut into segments when longer than `segment_s`), and one per folder of
    images.

    Args:
        files: Image and video files (see sources.collect_files).
        segment_s: Videos longer than this are cut into equal segments no longer than it, seconds (0: never;
            None: `batch.segment_s`).
        vid_stride: Every n-th frame is processed: segments start on such frames (None: `stream.vid_stride`).

    Example:
        >>> [u.id for u in plan_units([Path("talk.mp4")], segment_s=300)]  # doctest: +SKIP
        ['talk-3f2a9c1e07', 'talk-8b41d0c2aa', 'talk-c09e1f3b5d']
    """
    segment_s = default_of(segment_s, "batch.segment_s")
    vid_stride = default_of(vid_stride, "stream.vid_stride")
    videos_and_folders: dict[Path, list[Path] | None] = {}  # first mention first; None: a video
    for file in files:
        if file.suffix.lower() in IMAGE_SUFFIXES:
            videos_and_folders.setdefault(file.parent, []).append(file)
        else:
            videos_and_folders[file] = None
    stems = {FACES_TABLE, SOURCES_TABLE}  # a source called faces writes faces_2.csv, not over the table
    units = []
    for path, images in videos_and_folders.items():
        stem = unique_name(safe_stem(path.stem if images is None else path.name), stems)
        if images is not None:
            key = f"{path.resolve()}|" + "|".join(p.name for p in images)
            units.append(
                Unit(
                    _unit_id(path.name, key),
                    str(path),
                    stem,
                    "images",
                    images=tuple(map(str, images)),
                    expected_frames=len(images),
                )
            )
            continue
        size = path.stat().st_size if path.is_file() else -1
        for start, end, frames in _segments(path, segment_s, vid_stride):
            key = f"{path.resolve()}|{size}|{start}|{end}"
            expected = None if frames is None else math.ceil(frames / vid_stride)
            unit_id = _unit_id(path.stem, key)
            units.append(Unit(unit_id, str(path), stem, "video", start, end, expected_frames=expected))
    return units


def _unit_id(name: str, key: str) -> str:
    return f"{safe_stem(name)[:40]}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def longest_first(units: list[Unit]) -> list[Unit]:
    """Units in the order that lets several workers finish together: the longest first (those of unknown
    length before all), so that the last units to run, while other workers may already be idle, are short.

    Example:
        >>> sizes = {"a": 90, "b": None, "c": 300}
        >>> units = [Unit(n, "v.mp4", "v", "video", expected_frames=f) for n, f in sizes.items()]
        >>> [u.id for u in longest_first(units)]
        ['b', 'c', 'a']
    """
    return sorted(units, key=lambda u: -math.inf if u.expected_frames is None else -u.expected_frames)


def _segments(path: Path, segment_s: float, vid_stride: int) -> list[tuple[int, int | None, int | None]]:
    """Equal [start, end) frame ranges of at most segment_s, with the frames each should hold; the last runs
    to the end of the file (headers can be a few frames off). A video without a usable header is one unit
    of unknown length (as is a missing file, which its unit records as failed), and one whose frames are
    not evenly timed is one unit (a segment's seek could land on another frame)."""
    if not path.is_file():
        return [(0, None, None)]
    cap = cv2.VideoCapture(str(path))
    try:
        fps, frames = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if frames <= 0:  # unreadable, or no length in its header
        return [(0, None, None)]
    if segment_s <= 0 or not known_fps(fps):
        return [(0, None, frames)]
    count = math.ceil(frames / (segment_s * fps))
    if count > 1 and not evenly_timed(path):
        LOGGER.warning(
            "%s: frames not evenly timed (variable frame rate): processed whole, not in segments", path
        )
        count = 1
    length = math.ceil(math.ceil(frames / count) / vid_stride) * vid_stride  # starts on processed frames
    starts = list(range(0, frames, length))
    return [(s, e, (e or frames) - s) for s, e in zip(starts, starts[1:] + [None])]
