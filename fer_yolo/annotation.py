"""Drawing results on frames: boxes coloured by emotion, "emotion 0.87 #id" labels, probability bars, FPS."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import supervision as sv

from fer_yolo.config import default_of
from fer_yolo.emotion.labels import EMOTION_PROBS_KEY, EMOTIONS

#: One colour per emotion, in EMOTIONS order (angry red, disgust green, fear purple, happy yellow,
#: sad blue, surprise orange, neutral grey).
EMOTION_COLORS = sv.ColorPalette.from_hex(
    ["#e53935", "#43a047", "#8e24aa", "#fdd835", "#1e88e5", "#fb8c00", "#9e9e9e"]
)


def face_labels(faces: sv.Detections) -> list[str]:
    """ "happy 0.87 #3" per face (no "#id" for faces not yet on a track)."""
    probs = faces.data.get(EMOTION_PROBS_KEY)
    labels = []
    for i in range(len(faces)):
        text = "face" if probs is None else f"{EMOTIONS[int(probs[i].argmax())]} {probs[i].max():.2f}"
        tid = None if faces.tracker_id is None else int(faces.tracker_id[i])
        labels.append(text if tid is None or tid < 0 else f"{text} #{tid}")
    return labels


class FaceAnnotator:
    """Draws faces with their emotions onto a copy of the frame.

    Args:
        bars: Draw the 7 probabilities as bars beside each face (None: `stream.bars`).
        show_fps: Write the processing rate in the top-left corner (None: `stream.fps_overlay`).

    Example:
        >>> annotated = FaceAnnotator().annotate(frame, faces, fps=27.5)  # doctest: +SKIP
    """

    def __init__(self, bars: bool | None = None, show_fps: bool | None = None) -> None:
        self.bars = default_of(bars, "stream.bars")
        self.show_fps = default_of(show_fps, "stream.fps_overlay")

    @classmethod
    def from_config(cls, stream: Mapping) -> FaceAnnotator:
        """The annotator a `stream` config section asks for (its `bars` and `fps_overlay`)."""
        return cls(stream["bars"], stream["fps_overlay"])

    def annotate(self, image: np.ndarray, faces: sv.Detections, fps: float | None = None) -> np.ndarray:
        """Annotated copy of a BGR uint8 frame; `faces.class_id` is replaced by the emotion id for colour."""
        scene = image.copy()
        scale = max(0.4, min(1.2, max(image.shape[:2]) / 1400))
        thickness = max(1, round(2 * scale))
        if len(faces):
            probs = faces.data.get(EMOTION_PROBS_KEY)
            shown = faces[np.arange(len(faces))]  # shallow copy whose class_id we may change
            shown.class_id = probs.argmax(1) if probs is not None else np.full(len(faces), len(EMOTIONS) - 1)
            sv.BoxAnnotator(EMOTION_COLORS, thickness=thickness).annotate(scene, shown)
            sv.LabelAnnotator(
                EMOTION_COLORS,
                text_color=sv.Color.BLACK,
                text_scale=scale * 0.6,
                text_padding=max(2, round(5 * scale)),
            ).annotate(scene, shown, labels=face_labels(faces))
            if self.bars and probs is not None:
                for box, p in zip(faces.xyxy, probs):
                    _draw_bars(scene, box, p, scale)
        if self.show_fps and fps is not None:
            text = f"{fps:.1f} FPS"
            org = (10, 10 + round(30 * scale))
            cv2.putText(
                scene, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA
            )
            cv2.putText(
                scene, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA
            )
        return scene


def _draw_bars(scene: np.ndarray, xyxy: np.ndarray, probs: np.ndarray, scale: float) -> None:
    """Seven labelled bars to the right of a face box (to its left when there is no room)."""
    row, width = max(8, round(14 * scale)), max(60, round(110 * scale))
    x1, y1, x2, _ = (int(v) for v in xyxy)
    h, w = scene.shape[:2]
    left = x2 + 4 if x2 + 4 + width <= w else max(0, x1 - 4 - width)
    top = min(max(0, y1), max(0, h - row * len(EMOTIONS)))
    font = 0.35 * scale / 0.6
    for k, (name, p) in enumerate(zip(EMOTIONS, probs)):
        y = top + k * row
        color = EMOTION_COLORS.by_idx(k).as_bgr()
        cv2.rectangle(scene, (left, y), (left + width, y + row - 2), (40, 40, 40), -1)
        cv2.rectangle(scene, (left, y), (left + int(width * float(p)), y + row - 2), color, -1)
        cv2.putText(
            scene,
            f"{name} {p:.2f}",
            (left + 2, y + row - 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            font,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
