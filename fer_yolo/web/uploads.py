"""Upload checks: size limits and file types decided by content, never by the name the client sent."""

from __future__ import annotations

import ctypes
from pathlib import Path

import cv2
import numpy as np

from fer_yolo.data.images import BadImage, decode_image_scaled
from fer_yolo.sources import frame_times


class UploadError(ValueError):
    """An upload that is refused; the message is shown to the user as is."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_size(data_len: int, limit_mb: float, kind: str) -> None:
    if data_len == 0:
        raise UploadError(f"the {kind} is empty")
    if data_len > limit_mb * 1e6:
        raise UploadError(f"the {kind} is {data_len / 1e6:.1f} MB; the limit is {limit_mb:g} MB", status=413)


def read_image(data: bytes, limit_mb: float, max_mp: float, max_side: int) -> tuple[np.ndarray, float]:
    """Decode an uploaded image (JPEG, PNG, WebP, BMP, TIFF...) to BGR uint8 no larger than `max_side`.

    The pixel count is checked from the header before anything is decoded (a small file can declare a
    huge image); what the pipeline gains nothing from (its detector sees 320 px) is scaled away at once,
    while decoding where the format allows it (JPEG: `decode_image_scaled`).

    Returns:
        (image, scale of the image against the upload: boxes found in it divided by scale are the upload's).

    Raises:
        UploadError: Too big a file or too many pixels (413), or not a readable image (415).
    """
    check_size(len(data), limit_mb, "image")
    try:
        return decode_image_scaled(data, max_side, max_pixels=int(max_mp * 1e6))
    except BadImage as e:
        status = 413 if "limit" in str(e) or "too many pixels" in str(e) else 415
        raise UploadError(f"not a readable image ({e})" if status == 415 else str(e), status=status) from e


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise: RSS stays at its peak)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


#: Leading bytes of the video containers accepted (ISO BMFF/MP4/MOV, Matroska/WebM, AVI).
_VIDEO_MAGIC = ((4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"))


def check_video(path: Path, limit_mb: float, max_frames: int) -> tuple[int, float]:
    """Refuse a saved upload that is too big, not a video container, undecodable or too long.

    Returns:
        (frame count, fps).
    """
    size = path.stat().st_size
    check_size(size, limit_mb, "video")
    with path.open("rb") as f:
        head = f.read(16)
    if not any(head[o : o + len(m)] == m for o, m in _VIDEO_MAGIC):
        raise UploadError("not a video (MP4, MOV, MKV, WebM or AVI expected)", status=415)
    cap = cv2.VideoCapture(str(path))
    try:
        ok = cap.isOpened() and cap.read()[0]
        frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if not ok:
        raise UploadError("the video cannot be decoded", status=415)
    if frames <= 0:  # no length in its header (a browser recording): count its frames
        frames = len(frame_times(path) or [])
    if frames <= 0:
        raise UploadError("the video's frames cannot be counted", status=415)
    if frames > max_frames:
        raise UploadError(f"the video has {frames} frames; the limit is {max_frames}", status=413)
    return frames, fps
