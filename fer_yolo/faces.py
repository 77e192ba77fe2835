"""The face record: one face in one frame, as every output writes it and every summary counts it.

The pipeline keeps a frame's faces as `sv.Detections` (what detectors, trackers and annotators share);
`FaceRecord` is what leaves it: timeline rows (JSON Lines and CSV, `TIMELINE_COLUMNS`), the faces table of
`batch`, the web API's faces and the run summaries are all made from records, and a timeline row reads back
into the same record (`FaceRecord.from_row`).
"""

from __future__ import annotations

from dataclasses import dataclass

import supervision as sv

from fer_yolo.emotion.labels import EMOTION_PROBS_KEY, EMOTIONS

#: Timeline columns (CSV header; JSON Lines use the same names per face).
TIMELINE_COLUMNS = ["frame", "t_s", "track_id", "x1", "y1", "x2", "y2", "confidence", "emotion"] + [
    f"p_{e}" for e in EMOTIONS
]
#: Timeline CSV columns: the file each face's frame came from (the JSON Lines frame's "source": the image of
#: an image set, the video or stream otherwise), then the face's timeline columns.
CSV_COLUMNS = ["file", *TIMELINE_COLUMNS]


def csv_rows(file: str, rows: list[dict]) -> list[dict]:
    """A frame's timeline rows (FaceRecord.to_row) as CSV rows, keyed by CSV_COLUMNS: `file` first."""
    return [{"file": file} | row for row in rows]


@dataclass(frozen=True)
class FaceRecord:
    """One face in one frame, rounded as outputs write it (box 0.1 px, time 1 ms, scores 4 digits).

    Attributes:
        frame: Frame number in its source.
        t_s: Time of the frame, seconds.
        track_id: Track of the face (-1: not yet on a track; None: no tracking, e.g. photos).
        xyxy: Box in frame pixels.
        confidence: Detector confidence.
        emotion: The most probable emotion (of the unrounded probabilities), or None where no head ran.
        probs: Emotion probabilities in EMOTIONS order, or None.
    """

    frame: int
    t_s: float
    track_id: int | None
    xyxy: tuple[float, float, float, float]
    confidence: float
    emotion: str | None
    probs: tuple[float, ...] | None

    def to_row(self) -> dict:
        """The timeline row: a dict keyed by TIMELINE_COLUMNS."""
        row = {"frame": self.frame, "t_s": self.t_s, "track_id": self.track_id}
        row |= dict(zip(("x1", "y1", "x2", "y2"), self.xyxy))
        row |= {"confidence": self.confidence, "emotion": self.emotion}
        for k, e in enumerate(EMOTIONS):
            row[f"p_{e}"] = None if self.probs is None else self.probs[k]
        return row

    @classmethod
    def from_row(cls, row: dict) -> FaceRecord:
        """The record a timeline row (JSON Lines face) was written from."""
        probs = None if row["p_angry"] is None else tuple(float(row[f"p_{e}"]) for e in EMOTIONS)
        box = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
        frame, t_s, confidence = int(row["frame"]), float(row["t_s"]), float(row["confidence"])
        return cls(frame, t_s, row["track_id"], box, confidence, row["emotion"], probs)


def face_records(frame: int, t_s: float, faces: sv.Detections, scale: float = 1.0) -> list[FaceRecord]:
    """Records of the faces of one frame (boxes divided by `scale`: back to the pixels of an image that was
    resized by `scale` before detection)."""
    probs = faces.data.get(EMOTION_PROBS_KEY)
    records = []
    for i in range(len(faces)):
        x1, y1, x2, y2 = (round(float(v) / scale, 1) for v in faces.xyxy[i])
        records.append(
            FaceRecord(
                frame=int(frame),
                t_s=round(float(t_s), 3),
                track_id=None if faces.tracker_id is None else int(faces.tracker_id[i]),
                xyxy=(x1, y1, x2, y2),
                confidence=round(float(faces.confidence[i]), 4),
                emotion=None if probs is None else EMOTIONS[int(probs[i].argmax())],
                probs=None if probs is None else tuple(round(float(p), 4) for p in probs[i]),
            )
        )
    return records
