"""Frame sources: webcams, RTSP/HTTP streams, video files, images, folders and globs.

`open_sources(spec)` classifies one spec or several once and yields one `FrameSource` per input: a
folder, glob or list of videos gives one source per video (so tracks and outputs restart per video),
their images one `ImageSource` for all of them. Every source is a context manager and an iterator of
`Frame`s.

Live sources (webcam, rtsp://, http(s)://) read in a daemon thread that keeps only the newest frame,
so processing never falls behind real time: frames that arrive while one is being processed are
dropped and counted. Network streams that drop are re-opened with exponential backoff.
"""

from __future__ import annotations

import csv
import glob
import itertools
import logging
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_yolo.config import default_of
from fer_yolo.data.images import IMAGE_SUFFIXES, BadImage, decode_image
from fer_yolo.errors import SourceError

LOGGER = logging.getLogger(__name__)
#: Source lists: one path per line (text) or a `path` column (CSV, else its first column).
LIST_SUFFIXES = frozenset({".txt", ".csv", ".lst"})

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"})
#: Frame rate assumed where a container or stream reports none (0) or garbage.
FALLBACK_FPS = 30.0
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    """One BGR uint8 (H, W, 3) frame.

    Attributes:
        image: The pixels.
        index: Frame number in its source (video frame index; image number in an image set).
        t_s: Time in seconds: media time for files, seconds since opening for live sources.
        name: Where it came from (file path for images, source name otherwise).
    """

    image: np.ndarray
    index: int
    t_s: float
    name: str


@dataclass(frozen=True)
class SourceInfo:
    """What a sink needs to know about a source.

    Attributes:
        name: Display name (file name, URL or "webcam 0").
        stem: Safe file-name stem for this source's outputs.
        fps: Frames per second (after --vid-stride), or None for image sets.
        resolution_wh: (width, height) of the first frame, or None for image sets.
        total_frames: Frames that will be yielded, or None when unknown (live sources).
        live: True for webcams and network streams.
    """

    name: str
    stem: str
    fps: float | None
    resolution_wh: tuple[int, int] | None
    total_frames: int | None
    live: bool


class FrameSource:
    """Base class: iterate over Frames, then close() (also via `with`)."""

    info: SourceInfo

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_video(target: str | Path) -> cv2.VideoCapture:
    """A capture whose decoder uses OpenCV's thread count (FFmpeg's own default is every core): a batch
    worker given 1 CPU (cv2.setNumThreads(1)) decodes on 1 thread."""
    return cv2.VideoCapture(str(target), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, cv2.getNumThreads()])


def public_url(uri: str) -> str:
    """A stream URL without its user name and password: what logs, file names and outputs show.

    Example:
        >>> public_url("rtsp://admin:s3cret@10.0.0.5:554/stream1")
        'rtsp://10.0.0.5:554/stream1'
    """
    parts = urllib.parse.urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else uri


def usable_fps(fps: float) -> float:
    """A frame rate as reported by OpenCV, or FALLBACK_FPS where it is 0 or garbage.

    Example:
        >>> usable_fps(25.0), usable_fps(0.0), usable_fps(90000.0)
        (25.0, 30.0, 30.0)
    """
    return fps if known_fps(fps) else FALLBACK_FPS


def known_fps(fps: float) -> bool:
    """Whether a frame rate OpenCV reports is a real one (not 0, NaN or garbage from a broken header)."""
    return 0 < fps < 1000


def safe_stem(text: str) -> str:
    """`text` as a file-name stem: letters, digits, - _ . kept, the rest _, none leading (a shell would read -
    as an option, a spreadsheet as a formula), at most 80 characters.

    Example:
        >>> safe_stem("rtsp cam/1:554"), safe_stem("-=cmd.mp4")
        ('rtsp_cam_1_554', 'cmd.mp4')
    """
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._-")[:80] or "source"


class VideoFileSource(FrameSource):
    """Every frame of a video file (or every `vid_stride`-th), with media timestamps.

    `t_s` is the decoder's presentation time of each frame, so that a variable-frame-rate video (phones
    record them) keeps real time; index / fps stands in where a container gives no usable timestamp.

    Args:
        path: The file (or an http(s) URL of a recording).
        vid_stride: Keep every n-th frame (None: `stream.vid_stride`).
        start_frame: First frame to read: a segment of the file (fer-yolo batch). Frame indices and `t_s`
            stay those of the whole file, so segments line up with a run over all of it.
        end_frame: Frame after the last one read (None: to the end).
        name: What its frames and errors call it (None: the path, or the URL without credentials), e.g. an
            upload's own file name rather than where the server stored it.

    Raises:
        SourceError: The file cannot be opened as a video, or not read from `start_frame`.
        ValueError: `vid_stride` below 1, or a negative or empty frame range.

    Example:
        >>> with VideoFileSource("talk.mp4", start_frame=300, end_frame=600) as source:  # doctest: +SKIP
        ...     [frame.index for frame in source][:2]
        [300, 301]
    """

    def __init__(
        self,
        path: str | Path,
        vid_stride: int | None = None,
        start_frame: int = 0,
        end_frame: int | None = None,
        name: str | None = None,
    ) -> None:
        vid_stride = default_of(vid_stride, "stream.vid_stride")
        if int(vid_stride) < 1:
            raise ValueError(f"vid_stride must be >= 1, got {vid_stride}")
        if start_frame < 0 or (end_frame is not None and end_frame <= start_frame):
            raise ValueError(f"frame range [{start_frame}, {end_frame}) is empty or negative")
        url = isinstance(path, str) and is_video_url(path)  # a recorded video over http(s): FFmpeg reads it
        location = public_url(path) if url else str(Path(path))
        name = location if name is None else name
        self.vid_stride = int(vid_stride)
        self.cap = _open_video(path if url else location)
        if not self.cap.isOpened():
            self.cap.release()
            raise SourceError(f"cannot open video {name}", "check the path and that the file is a video")
        self.fps = usable_fps(self.cap.get(cv2.CAP_PROP_FPS))
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.start_frame, self.end_frame = int(start_frame), end_frame
        if start_frame:
            try:
                self._seek(path if url else location, name)
            except SourceError:
                self.cap.release()
                raise
        n = max(0, min(n, end_frame or n) - start_frame) if n > 0 else 0
        self.info = SourceInfo(
            name=name,
            stem=safe_stem(Path(urllib.parse.urlsplit(location).path if url else name).stem),
            fps=self.fps / self.vid_stride,
            resolution_wh=(w, h),
            total_frames=-(-n // self.vid_stride) if n > 0 else None,
            live=False,
        )

    def _seek(self, target: str | Path, name: str) -> None:
        # FFmpeg seeks to the keyframe before and decodes up to the frame; a container that cannot seek
        # reports another position, and then the frames before are decoded and dropped.
        self.cap.set(cv2.CAP_PROP_POS_FRAMES, self.start_frame)
        if int(self.cap.get(cv2.CAP_PROP_POS_FRAMES)) == self.start_frame:
            return
        self.cap.release()
        self.cap = _open_video(target)
        for _ in range(self.start_frame):
            if not self.cap.grab():
                raise SourceError(f"{name} ends before frame {self.start_frame}", "check the frame range")

    def __iter__(self) -> Iterator[Frame]:
        index, t_s = self.start_frame, None
        while self.end_frame is None or index < self.end_frame:
            ok, image = self.cap.read()
            if not ok:
                return
            t_s = self._media_time(index, t_s)
            yield Frame(image, index, t_s, self.info.name)
            for _ in range(self.vid_stride - 1):  # grab() skips decoding the frames we drop
                index += 1
                if not self.cap.grab():
                    return
            index += 1

    def _media_time(self, index: int, previous: float | None) -> float:
        """Seconds from the video's start to the frame just read (`previous`: the last frame's time)."""
        t_s = self.cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if previous is None:  # 0 is a timestamp only for the file's first frame, not a segment's
            usable = math.isfinite(t_s) and (t_s > 0 or (t_s == 0 and index == 0))
            return t_s if usable else index / self.fps
        return t_s if math.isfinite(t_s) and t_s > previous else previous + self.vid_stride / self.fps

    def close(self) -> None:
        self.cap.release()


def frame_times(path: str | Path) -> list[int] | None:
    """The timestamps of a video file's frames, in stream time units, from its index or its packets
    (nothing is decoded); None when it is unreadable or has no video stream. A file whose header holds no
    length (a browser's MediaRecorder WebM: OpenCV then reports a negative frame count) is counted here.
    """
    import av  # PyAV (supervision's dependency too): OpenCV does not expose packet timestamps

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.best("video")
            if stream is None:
                return None
            entries = stream.index_entries  # an MP4's sample table: every frame, without reading the file
            if stream.frames > 1 and len(entries) == stream.frames:
                return [e.timestamp for e in entries]
            return [p.pts for p in container.demux(stream) if p.pts is not None]
    except av.FFmpegError:  # unreadable, or no video stream
        return None


def evenly_timed(path: str | Path) -> bool:
    """Whether a video file's frames lie on one even time grid (no frame more than half a step off it), from
    `frame_times`. Only then does `VideoFileSource(start_frame=...)` land on the frame asked for: OpenCV seeks
    to index / fps, which on a variable-frame-rate video, or one with dropped frames, can be frames away.
    """
    times = frame_times(path)
    if times is None:
        return False
    t = np.sort(np.asarray(times, np.float64))
    if len(t) < 2 or t[-1] <= t[0]:
        return False
    step = (t[-1] - t[0]) / (len(t) - 1)
    return bool(np.abs(t - t[0] - step * np.arange(len(t))).max() < step / 2)


class ImageSource(FrameSource):
    """A list of image files; unreadable ones are skipped, logged and listed in `skipped`."""

    def __init__(self, paths: list[Path], name: str) -> None:
        self.paths = paths
        self.skipped: list[tuple[str, str]] = []
        self.info = SourceInfo(name, safe_stem(Path(name).stem), None, None, len(paths), live=False)

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            try:
                image = decode_image(path.read_bytes())
            except (BadImage, OSError) as e:
                LOGGER.warning("skipped %s: %s", path, e)
                self.skipped.append((str(path), str(e)))
                continue
            yield Frame(image, i, 0.0, str(path))


class ArraySource(FrameSource):
    """Frames already in memory: an uploaded image, or clips decoded ahead (benchmarks).

    Args:
        images: BGR uint8 frames.
        fps: Their frame rate (a video: tracked), or None (independent images).
        name: What reports call the source.
    """

    def __init__(self, images: list[np.ndarray], fps: float | None = None, name: str = "frames") -> None:
        self.images = images
        wh = images[0].shape[1::-1] if fps is not None and images else None
        self.info = SourceInfo(name, safe_stem(name), fps, wh, len(images), live=False)

    def __iter__(self) -> Iterator[Frame]:
        for i, image in enumerate(self.images):
            yield Frame(image, i, i / self.info.fps if self.info.fps else 0.0, self.info.name)


class LiveSource(FrameSource):
    """A webcam or network stream read in a thread that keeps only the newest frame.

    Args:
        uri: Webcam index (int) or stream URL.
        reconnect: Re-open a dropped network stream (with backoff) instead of ending (None:
            `stream.reconnect`).
        max_backoff_s: Longest wait between reconnection attempts.
        max_retries: Give up after this many failed reconnections in a row (0 = never).
        timeout_s: Network streams: longest wait to open, or for a frame, before reconnecting.

    Raises:
        SourceError: The source cannot be opened at all.
    """

    def __init__(
        self,
        uri: int | str,
        reconnect: bool | None = None,
        max_backoff_s: float = 8.0,
        max_retries: int = 0,
        timeout_s: float = 5.0,
    ) -> None:
        self.uri, self.timeout_s = uri, timeout_s
        self.webcam = isinstance(uri, int)
        self.reconnect = default_of(reconnect, "stream.reconnect") and not self.webcam
        self.max_backoff_s, self.max_retries = max_backoff_s, max_retries
        name = f"webcam {uri}" if self.webcam else public_url(str(uri))  # credentials stay out of outputs
        self.cap = self._open()
        if self.cap is None:
            hint = (
                "no camera at this index here (is one attached, and is this user allowed to use it?)"
                if self.webcam
                else "check the URL, credentials and that the server is up"
            )
            raise SourceError(f"cannot open {name}", hint)
        ok, first = self.cap.read()
        if not ok:
            self.cap.release()
            raise SourceError(
                f"{name} opened but gave no frame", "check that the camera/stream is sending video"
            )
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.info = SourceInfo(
            name=name,
            stem=safe_stem(f"webcam{uri}" if self.webcam else name.split("://", 1)[-1]),
            fps=usable_fps(fps),
            resolution_wh=(first.shape[1], first.shape[0]),
            total_frames=None,
            live=True,
        )
        self.dropped = 0  # frames replaced before the consumer took them
        self.reconnects = 0
        self.lost = 0  # reconnection attempts since the stream was lost (0: it streams)
        self._lock = threading.Condition()
        self._latest: tuple[np.ndarray, int] | None = (first, 0)
        self._stop = threading.Event()
        self._ended = False
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._reader, name=f"capture {name}", daemon=True)
        self._thread.start()

    def _open(self) -> cv2.VideoCapture | None:
        if self.webcam:
            cap = cv2.VideoCapture(self.uri)
        else:
            # RTSP over TCP unless the user set FFmpeg options: no lost packets, and a dead server is noticed
            # at once. Bounded open/read waits turn a silent stream into a reconnection instead of a hang.
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
            timeout_ms = int(self.timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            cap = cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)
        if cap.isOpened():
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # webcams: do not queue stale frames in the driver
            return cap
        cap.release()
        return None

    def _reader(self) -> None:
        # The reader thread owns the capture: only it reads, re-opens and finally releases it, so close()
        # never releases a device in the middle of a read.
        index, failures = 1, 0
        try:
            while not self._stop.is_set():
                ok, image = self.cap.read() if self.cap is not None else (False, None)
                if ok:
                    failures = self.lost = 0
                    with self._lock:
                        if self._latest is not None:
                            self.dropped += 1
                        self._latest = (image, index)
                        self._lock.notify()
                    index += 1
                    continue
                if not self.reconnect:
                    break
                if self.cap is not None:
                    self.cap.release()
                    self.cap = None
                failures += 1
                if self.max_retries and failures > self.max_retries:
                    LOGGER.error("%s: gave up after %d reconnection attempts", self.info.name, failures - 1)
                    break
                self.lost = failures
                wait = min(self.max_backoff_s, 0.5 * 2 ** (failures - 1))
                LOGGER.warning(
                    "%s: stream lost; reconnecting in %.1f s (attempt %d)", self.info.name, wait, failures
                )
                if self._stop.wait(wait):
                    break
                self.cap = self._open()
                if self.cap is not None:
                    self.reconnects += 1
                    LOGGER.warning("%s: reconnected", self.info.name)
        except Exception as e:  # a capture backend error ends the source instead of hanging the consumer
            LOGGER.error("%s: capture failed: %s", self.info.name, e)
        finally:
            if self.cap is not None:
                self.cap.release()
                self.cap = None
            with self._lock:
                self._ended = True
                self._lock.notify()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._latest is not None or self._ended)
                if self._latest is None:
                    return
                (image, index), self._latest = self._latest, None
            yield Frame(image, index, time.monotonic() - self._t0, self.info.name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 5)
        if (
            self._thread.is_alive()
        ):  # a driver blocked in read(): the thread releases the device when it returns
            LOGGER.warning("%s: capture still blocked; it is released when the read returns", self.info.name)


def is_glob(spec: str) -> bool:
    """True for a spec with glob magic (*, ? or [)."""
    return any(c in spec for c in "*?[")


def expand_spec(spec: str, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """The image and video files a command-line spec names: a file, a folder (recursively) or a glob.

    Args:
        spec: A file, folder or glob.
        exclude: Output folders whose files a folder or a recursive glob (**) leaves out (e.g. a run's own
            earlier outputs inside the folder it reads), unless the folder searched is itself inside one of
            them. A glob without ** names every level, so it finds what it names.

    Raises:
        SourceError: Nothing at `spec`.
    """
    path = Path(spec).expanduser()
    if path.is_file():  # before globbing: "clip[1].mp4" is a file name, not a pattern
        files = [path]
    elif path.is_dir():
        files = _outside(sorted(p for p in path.rglob("*") if p.is_file()), path, exclude)
    elif is_glob(spec):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        if "**" in spec:
            # the folder the glob searches: photos of photos/**/*.jpg
            root = Path(*itertools.takewhile(lambda part: not is_glob(part), path.parts))
            files = _outside(files, root, exclude)
    else:
        raise SourceError(
            f"source not found: {spec}", "pass a webcam index, a URL, a file, a folder or a glob"
        )
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]


def _outside(files: list[Path], root: Path, folders: Iterable[str | Path]) -> list[Path]:
    """`files` (found under `root`) less those inside any of `folders` that does not hold `root` itself."""
    root = root.resolve()
    skip = [f for f in (Path(f).expanduser().resolve() for f in folders) if not root.is_relative_to(f)]
    return [p for p in files if not any(p.resolve().is_relative_to(f) for f in skip)]


def is_video_url(spec: str) -> bool:
    """True for an http(s) URL of a video file (by its suffix): a recording, read to its end, not a stream."""
    parts = urllib.parse.urlsplit(spec)
    return parts.scheme.lower() in ("http", "https") and Path(parts.path).suffix.lower() in VIDEO_SUFFIXES


def read_list(path: Path) -> list[str]:
    """The paths a source list names, relative ones taken from the list's folder.

    Args:
        path: A text file (one path a line; blank lines and `#` comments skipped) or a CSV file (its `path`
            column, else its first column).

    Example:
        >>> read_list(Path("archive.csv"))  # doctest: +SKIP
        ['/data/archive/2021/talk.mp4', '/data/archive/2021/photos']
    """
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        rows = [row for row in csv.reader(text.splitlines()) if row]
        column = rows.pop(0).index("path") if rows and "path" in rows[0] else 0
        entries = [row[column] if column < len(row) else "" for row in rows]  # a short row names nothing
    else:
        entries = text.splitlines()
    entries = [e.strip() for e in entries]
    return [str(path.parent / Path(e).expanduser()) for e in entries if e and not e.startswith("#")]


def collect_files(specs: list[str], exclude: Iterable[str | Path] = ()) -> list[Path]:
    """Image and video files named by files, folders (recursive), globs and source lists, first mention
    first, each once; folders and ** globs leave out the files inside `exclude` (`expand_spec`).

    A path on the command line that matches nothing is an error; one in a source list is kept, so the run
    records it as failed and goes on.

    Raises:
        SourceError: A command-line spec that matches nothing, or nothing to process at all.
    """
    files: dict[Path, Path] = {}  # the file -> as first named (a.jpg and ./a.jpg are one file)
    exclude = tuple(exclude)  # read once per spec
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for entry in read_list(path):
                found = (
                    expand_spec(entry, exclude) if Path(entry).exists() or is_glob(entry) else [Path(entry)]
                )
                for file in found:
                    files.setdefault(file.resolve(), file)
        else:
            for file in expand_spec(spec, exclude):
                files.setdefault(file.resolve(), file)
    if not files:
        raise SourceError(
            f"no images or videos in {' '.join(specs)}",
            f"supported: {sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES)}",
        )
    return list(files.values())


def is_live(spec: str) -> bool:
    """True for webcam indexes and stream URLs (not http(s) URLs of video files)."""
    return spec.isdigit() or (spec.lower().startswith(STREAM_PREFIXES) and not is_video_url(spec))


def open_sources(
    spec: str | int | os.PathLike | Iterable[str | int | os.PathLike],
    vid_stride: int | None = None,
    reconnect: bool | None = None,
    skipped: list[tuple[str, str]] | None = None,
    exclude: Iterable[str | Path] = (),
) -> Iterator[FrameSource]:
    """Yield the sources one spec or several name, each opened only when reached.

    The images of every file, folder, glob and list are one image set, yielded first; then each video, then
    each webcam and stream, in the order named.

    Args:
        spec: Webcam index (0 or "0"), stream URL, video file (path or http(s) URL), image file, folder
            (searched recursively), glob or source list (LIST_SUFFIXES: one path a line, or a CSV's `path`
            column), or a list of these (the shell's expansion of `*.jpg`).
        vid_stride: Keep every n-th frame of video files (None: `stream.vid_stride`).
        reconnect: Re-open dropped network streams (None: `stream.reconnect`).
        skipped: Receives (file, reason) for each video of a folder, glob or list that cannot be opened and
            each file a list names that does not exist (unreadable images are listed by their ImageSource).
        exclude: Output folders a folder or a recursive (**) glob leaves out (`expand_spec`).

    Raises:
        SourceError: A spec that names nothing, no images or videos in them, or a single source that cannot be
            opened.
        ValueError: `vid_stride` below 1 (when a video is reached).

    Example:
        >>> [s.info.name for s in open_sources(["a.jpg", "b.jpg", "talk.mp4"])]  # doctest: +SKIP
        ['2 images', 'talk.mp4']
    """
    specs = [str(s) for s in ([spec] if isinstance(spec, (str, int, os.PathLike)) else spec)]
    streams = [s for s in specs if is_live(s) or is_video_url(s)]
    paths = [s for s in specs if s not in streams]
    files = collect_files(paths, exclude) if paths else []
    exists = {p: p.exists() for p in files}  # one look per file
    for path in (p for p in files if not exists[p]):  # named in a source list: reported, the rest runs
        LOGGER.warning("skipped %s: not found", path)
        if skipped is not None:
            skipped.append((str(path), "not found"))
    files = [p for p in files if exists[p]]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        folder = len(paths) == 1 and Path(paths[0]).suffix.lower() not in LIST_SUFFIXES  # or a glob
        name = str(images[0]) if len(images) == 1 else paths[0] if folder else f"{len(images)} images"
        yield ImageSource(images, name)
    for video in (p for p in files if p.suffix.lower() in VIDEO_SUFFIXES):
        try:
            source = VideoFileSource(video, vid_stride)
        except SourceError:
            if len(files) == 1 and not streams:
                raise
            LOGGER.warning("skipped %s: cannot open as a video", video)
            if skipped is not None:
                skipped.append((str(video), "cannot open as a video"))
            continue
        yield source
    for stream in streams:
        if is_live(stream):
            yield LiveSource(int(stream) if stream.isdigit() else stream, reconnect=reconnect)
        else:
            yield VideoFileSource(stream, vid_stride)
