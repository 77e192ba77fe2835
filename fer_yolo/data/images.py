"""Reading images from bytes with a clear reason when they cannot be used."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

#: File suffixes read as images, everywhere (sources, crop datasets, convert).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class BadImage(Exception):
    """An input file that is not a usable image; str(e) is the reason shown in reports."""


def content_hash(data: bytes) -> str:
    """Hex digest identifying byte-identical inputs."""
    return hashlib.sha1(data).hexdigest()


#: Letterbox padding grey, as in ultralytics training; also the canvas around a dataset face (`face_boxes`),
#: a grey the detector knows as "no scene".
PAD_VALUE = 114
#: Largest image decoded (pixels): 64 MP, a 8000x8000 photo. Bigger ones would take gigabytes.
MAX_PIXELS = 64_000_000
#: PIL's names of JPEG files (MPO: a phone's JPEG with more pictures after the first, which is decoded).
_JPEG = ("JPEG", "MPO")


def decode_image(data: bytes, grey: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to BGR uint8 (H, W, 3), or grey (H, W) with `grey`, at full size.

    The same as `decode_image_scaled(data, None, grey, max_pixels)[0]`.

    Raises:
        BadImage: empty, not an image, truncated, corrupt or over `max_pixels`.
    """
    return decode_image_scaled(data, None, grey, max_pixels)[0]


def decode_image_scaled(
    data: bytes, max_side: int | None, grey: bool = False, max_pixels: int = MAX_PIXELS
) -> tuple[np.ndarray, float]:
    """Decode image bytes, scaled down (never up) to at most `max_side` pixels on the longer side.

    The header is read first: its pixel count is checked before anything is decoded, and a file that
    ends early is refused (PIL walks a PNG's chunks, the JPEG markers are walked here) instead of being
    returned half grey. The image is then decoded once, by OpenCV, which applies the EXIF orientation as
    ultralytics' reader does. A JPEG that is to be scaled down is decoded by libjpeg itself at 1/2, 1/4
    or 1/8 of its size (the smallest of these still at least `max_side`), so a large photo never exists
    at full size in memory; other formats are decoded at full size (grey ones as one channel until
    scaled). Both are then scaled with INTER_AREA.

    Args:
        data: The encoded file (JPEG, PNG, WebP, BMP, TIFF...).
        max_side: Longest side of the result, pixels; None keeps the full size.
        grey: Return grey (H, W) instead of BGR (H, W, 3).
        max_pixels: Most pixels the file may declare.

    Returns:
        (uint8 image, scale): the image is the file's, oriented, times `scale` (<= 1); its boxes divided
        by `scale` are the file's.

    Raises:
        BadImage: empty, not an image, truncated, corrupt or over `max_pixels`.

    Example:
        >>> import cv2, numpy as np
        >>> png = cv2.imencode(".png", np.zeros((3000, 1000, 3), np.uint8))[1].tobytes()
        >>> image, scale = decode_image_scaled(png, max_side=1500)
        >>> image.shape, scale
        ((1500, 500, 3), 0.5)
    """
    if not data:
        raise BadImage("empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            (w, h), fmt = im.size, im.format
            if w * h > max_pixels:
                raise BadImage(f"{w}x{h} pixels: over the {max_pixels / 1e6:g} MP limit")
            if fmt in _JPEG:
                if not _jpeg_is_complete(data):
                    raise BadImage("truncated or corrupt image (no end marker after its data)")
            else:
                im.verify()  # PNG: every chunk and its checksum, without decompressing
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except Image.DecompressionBombError as e:
        raise BadImage(f"too many pixels ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"truncated or corrupt image ({e})") from None
    scale = 1.0 if max_side is None else min(1.0, max_side / max(w, h))
    target_long = round(max(w, h) * scale)
    reduce = 1
    if fmt in _JPEG:
        reduce = max((n for n in (1, 2, 4, 8) if -(-max(w, h) // n) >= target_long), default=1)
    flags = {
        (False, 1): cv2.IMREAD_ANYCOLOR,  # grey stays one channel until it is scaled
        (False, 2): cv2.IMREAD_REDUCED_COLOR_2,
        (False, 4): cv2.IMREAD_REDUCED_COLOR_4,
        (False, 8): cv2.IMREAD_REDUCED_COLOR_8,
        (True, 1): cv2.IMREAD_GRAYSCALE,
        (True, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
        (True, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4,
        (True, 8): cv2.IMREAD_REDUCED_GRAYSCALE_8,
    }[grey, reduce]
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None or img.size == 0:
        raise BadImage("image format not readable by OpenCV")
    if scale < 1:
        # the EXIF orientation may have swapped the sides: the decoded shape tells which way it came out
        long_h = img.shape[0] > img.shape[1] or (img.shape[0] == img.shape[1] and h >= w)
        short = round(min(w, h) * scale)
        size_wh = (max(1, short), max(1, target_long)) if long_h else (max(1, target_long), max(1, short))
        if (img.shape[1], img.shape[0]) != size_wh:
            img = cv2.resize(img, size_wh, interpolation=cv2.INTER_AREA)
    if img.ndim == 2 and not grey:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img, scale


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """`image` encoded in the format of a file suffix (".jpg", ".png", ...: any of IMAGE_SUFFIXES).

    Raises:
        ValueError: OpenCV cannot encode it in that format.
    """
    try:
        ok, data = cv2.imencode(suffix, image)
    except cv2.error as e:  # an unknown suffix or a shape the format cannot hold
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {suffix}: {e}") from e
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {suffix}")
    return data.tobytes()


def as_bgr(image: np.ndarray | None) -> np.ndarray:
    """A frame as the networks read it, 8-bit BGR: grey (H, W) or (H, W, 1) and BGRA (H, W, 4) converted.

    Raises:
        ValueError: None (what cv2.imread returns for a file it cannot read), not 8-bit, or not an image.
    """
    if image is None:
        raise ValueError("the image is None (cv2.imread returns None for a file it cannot read)")
    if isinstance(image, (str, os.PathLike)):
        raise ValueError(f"expected an image array, got the path {str(image)!r}: cv2.imread it first")
    if not isinstance(image, np.ndarray):
        hint = (
            ": np.asarray(image)[..., ::-1] makes an RGB PIL image BGR"
            if isinstance(image, Image.Image)
            else ""
        )
        raise ValueError(f"expected an 8-bit BGR numpy array, got {type(image).__name__}{hint}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"expected an 8-bit (uint8) BGR image, got {image.dtype}: scale it to 0-255 and convert"
        )
    channels = (1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else 0) if image.size else 0
    if channels not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image.shape}")
    if channels == 3:
        return image
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if channels == 1 else cv2.COLOR_BGRA2BGR)


def _jpeg_is_complete(data: bytes) -> bool:
    """Whether a JPEG's scan data ends with its end-of-image marker (FF D9).

    OpenCV 4 returns a truncated JPEG with its missing rows grey and no error. The header segments are
    skipped by their lengths (an EXIF thumbnail is a whole JPEG of its own); from the first scan on,
    FF D9 occurs only as the end marker (the scans escape every FF byte).
    """
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
        elif marker == 0xDA:  # start of the first scan
            return data.find(b"\xff\xd9", i) != -1
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return False


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes.

    Raises:
        BadImage: the file cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise BadImage(f"cannot read file ({e.strerror})") from None
