"""Reading images from bytes with a clear reason when they cannot be used."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError


class BadImage(Exception):
    """An input file that is not a usable image; str(e) is the reason shown in reports."""


def content_hash(data: bytes) -> str:
    """Hex digest identifying byte-identical inputs."""
    return hashlib.sha1(data).hexdigest()


#: Largest image decoded (pixels): 64 MP, a 8000x8000 photo. Bigger ones would take gigabytes.
MAX_PIXELS = 64_000_000


def decode_image(data: bytes, grey: bool = False, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to BGR uint8 (H, W, 3), or grey (H, W) with `grey`.

    PIL checks the whole file first, so truncated files are rejected instead of being returned
    half grey; OpenCV then decodes it, applying the EXIF orientation as ultralytics' reader does.
    The pixel count is checked from the header, before anything is decoded.

    Raises:
        BadImage: empty, not an image, truncated, corrupt or over `max_pixels`.
    """
    if not data:
        raise BadImage("empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise BadImage(f"{im.width}x{im.height} pixels: over the {max_pixels / 1e6:g} MP limit")
            im.load()
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except Image.DecompressionBombError as e:
        raise BadImage(f"too many pixels ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise BadImage(f"truncated or corrupt image ({e})") from None
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise BadImage("image format not readable by OpenCV")
    return img


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes.

    Raises:
        BadImage: the file cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise BadImage(f"cannot read file ({e.strerror})") from None
