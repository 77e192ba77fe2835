"""Close-up faces for the face detector: zoomed windows of labelled scene photos.

WIDER FACE holds few faces that fill the frame, the usual view of a webcam. A zoom window is a crop of a
labelled photo around one of its faces, sized so that the face's height is a chosen fraction of the
window's, then resized; every labelled box is carried into it. Training uses windows to teach close-ups
(`tools/make_closeups.py`), and evaluation uses them to measure them (`evaluation.closeups.zoom_views`): a
photo's face seen at zooms up to filling the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ZoomWindow:
    """A window of an image, in its pixels (x1, y1, x2, y2; integers)."""

    x1: int
    y1: int
    x2: int
    y2: int

    @property
    def wh(self) -> tuple[int, int]:
        return self.x2 - self.x1, self.y2 - self.y1


def zoom_window(
    box: np.ndarray, fraction: float, aspect: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)
) -> ZoomWindow:
    """The window around `box` (xyxy) in which the box's height is `fraction` of the window's height.

    Args:
        box: The face, xyxy pixels.
        fraction: Face height / window height, in (0, 1].
        aspect: Window width / height (1 square, 4/3 or 16/9 a camera's frame).
        shift: The window's centre moved from the face's, as a share of the room the face leaves
            (-1..1 on each axis: the face then touches that side of the window).

    Example:
        >>> zoom_window(np.array([40, 40, 60, 60]), 0.5)
        ZoomWindow(x1=30, y1=30, x2=70, y2=70)
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    h = (y2 - y1) / fraction
    w = h * aspect
    cx = (x1 + x2) / 2 + shift[0] * max(w - (x2 - x1), 0) / 2
    cy = (y1 + y2) / 2 + shift[1] * max(h - (y2 - y1), 0) / 2
    left, top = round(cx - w / 2), round(cy - h / 2)
    return ZoomWindow(left, top, left + round(w), top + round(h))


def fit_inside(window: ZoomWindow, image_wh: tuple[int, int]) -> ZoomWindow:
    """`window` moved (not resized) to lie inside the image where it fits, else cut to the image."""
    iw, ih = image_wh
    w, h = window.wh
    x1 = min(max(window.x1, 0), max(iw - w, 0))
    y1 = min(max(window.y1, 0), max(ih - h, 0))
    return ZoomWindow(x1, y1, min(x1 + w, iw), min(y1 + h, ih))


def carry_boxes(xyxy: np.ndarray, window: ZoomWindow, min_visible: float = 0.4) -> np.ndarray:
    """Boxes (n, 4) in the window's pixels, clipped to it; a box less than `min_visible` inside is dropped."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    w, h = window.wh
    moved = xyxy - [window.x1, window.y1, window.x1, window.y1]
    clipped = np.clip(moved, 0, [w, h, w, h])
    area = np.prod(np.clip(moved[:, 2:] - moved[:, :2], 0, None), axis=1)
    inside = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    keep = (area > 0) & (inside >= min_visible * area)
    return clipped[keep]


def zoom_crop(
    image: np.ndarray, xyxy: np.ndarray, window: ZoomWindow, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The window (inside the image: `fit_inside`) cut from `image`, resized so its longer side is `size`,
    and the boxes carried into it; returns (crop, boxes in the crop's pixels)."""
    crop = image[window.y1 : window.y2, window.x1 : window.x2]
    scale = size / max(window.wh)
    out_wh = (max(round(window.wh[0] * scale), 1), max(round(window.wh[1] * scale), 1))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(crop, out_wh, interpolation=interpolation), carry_boxes(xyxy, window) * scale
