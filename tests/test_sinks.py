"""Output sinks: timeline rows and columns, finalised files after an interruption, the run summary."""

from __future__ import annotations

import csv
import json
import signal
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv

from fer_yolo.annotation import EMOTION_COLORS
from fer_yolo.emotion.labels import EMOTION_PROBS_KEY, EMOTIONS
from fer_yolo.errors import FerYoloError
from fer_yolo.faces import CSV_COLUMNS, TIMELINE_COLUMNS, FaceRecord, face_records
from fer_yolo.sinks import RunSummary, TimelineSink, VideoSink


def faces(tracker_ids: list[int], emotion_ids: list[int]) -> sv.Detections:
    n = len(tracker_ids)
    d = sv.Detections(
        xyxy=np.tile(np.array([[10, 20, 30, 40]], np.float32), (n, 1)),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.zeros(n, int),
        tracker_id=np.array(tracker_ids, int),
    )
    d.data[EMOTION_PROBS_KEY] = np.eye(len(EMOTIONS), dtype=np.float32)[emotion_ids]
    return d


def records(t_s: float, tracker_ids: list[int], emotion_ids: list[int]) -> list[FaceRecord]:
    return face_records(round(t_s * 25), t_s, faces(tracker_ids, emotion_ids))


def test_a_timeline_row_reads_back_into_its_record():
    d = faces([3, -1], [5, 2])
    d.xyxy = np.array([[10.04, 20.0, 30.06, 40.0], [0, 0, 8, 8]], np.float32)
    d.data[EMOTION_PROBS_KEY][0] = [0.1, 0, 0, 0, 0, 0.45678, 0.44322]
    written = face_records(7, 0.28, d, scale=0.5)
    assert written[0].xyxy == (20.1, 40.0, 60.1, 80.0) and written[0].emotion == "surprise"
    assert written[0].probs[5] == 0.4568 and written[1].track_id == -1
    rows = [r.to_row() for r in written]
    assert list(rows[0]) == TIMELINE_COLUMNS and rows[0]["frame"] == 7 and rows[0]["p_surprise"] == 0.4568
    assert [FaceRecord.from_row(json.loads(json.dumps(row))) for row in rows] == written


def test_timeline_is_complete_even_when_the_run_is_interrupted(tmp_path: Path):
    with pytest.raises(KeyboardInterrupt), TimelineSink(tmp_path / "t.jsonl", tmp_path / "t.csv") as sink:
        sink.write(0, 0.0, records(0.0, [1, 2], [3, 6]), "clip.mp4")
        sink.write(1, 0.04, records(0.04, [], []), "clip.mp4")
        raise KeyboardInterrupt
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 1] and lines[1]["faces"] == []
    assert [f["emotion"] for f in lines[0]["faces"]] == ["happy", "neutral"]
    with (tmp_path / "t.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == CSV_COLUMNS and len(rows) == 2 and {r["file"] for r in rows} == {"clip.mp4"}
    assert rows[1]["track_id"] == "2" and float(rows[1]["p_neutral"]) == 1.0
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize("sink", ["timeline", "video"])
def test_a_second_ctrl_c_while_a_sink_finishes_lands_after_its_files_are_whole(sink: str, tmp_path: Path):
    with pytest.raises(KeyboardInterrupt):
        if sink == "timeline":
            out = TimelineSink(tmp_path / "t.jsonl", None)
            with out:
                out.write(0, 0.0, records(0.0, [1], [3]), "clip.mp4")
                out._stack.callback(signal.raise_signal, signal.SIGINT)  # Ctrl-C as it starts to finish
        else:
            out = VideoSink(tmp_path / "v.mp4", 10.0, (64, 48))
            with out:
                out.write(np.zeros((48, 64, 3), np.uint8))
                out._stack.callback(signal.raise_signal, signal.SIGINT)
    if sink == "timeline":
        assert json.loads((tmp_path / "t.jsonl").read_text())["frame"] == 0
    else:
        assert cv2.VideoCapture(str(tmp_path / "v.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 1
    assert not list(tmp_path.glob(".*"))  # published, not deleted half-way


def test_video_sink_writes_a_playable_file_with_fps_and_size(tmp_path: Path):
    with VideoSink(tmp_path / "v.mp4", 12.5, (64, 48)) as sink:
        for i in range(10):
            sink.write(np.full((48, 64, 3), i * 20, np.uint8))
        sink.write(np.zeros((96, 128, 3), np.uint8))  # other sizes are resized
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 11 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (64, 48)


def test_summary_gives_each_track_its_dominant_emotion_and_durations(tmp_path: Path):
    summary = RunSummary(fps=10.0)
    for i in range(10):
        summary.add(i / 10, records(i / 10, [4, -1], [3 if i < 7 else 4, 0]))
    summary.write(tmp_path / "s.json", tmp_path / "s.png")
    out = json.loads((tmp_path / "s.json").read_text())
    assert out["frames"] == 10 and len(out["tracks"]) == 1  # faces not yet on a track have no entry
    assert out["faces"] == 20 and out["emotions"] == {"angry": 10, "happy": 7, "sad": 3}  # every face counts
    track = out["tracks"][0]
    assert track["dominant_emotion"] == "happy" and track["emotion_s"] == {"happy": 0.7, "sad": 0.3}
    assert track["first_t_s"] == 0.0 and track["last_t_s"] == 0.9
    chart = cv2.imread(str(tmp_path / "s.png"))
    assert chart.shape == (350, 1000, 3)

    def pixels(emotion: str) -> int:
        return int(np.all(chart == EMOTION_COLORS.by_idx(EMOTIONS.index(emotion)).as_bgr(), axis=2).sum())

    # one second of faces: angry half the chart's height, happy 0.35, sad 0.15; the legend shows every colour
    assert pixels("angry") > pixels("happy") > pixels("sad") > 10 * pixels("fear") > 0


def test_an_image_sets_chart_counts_faces_per_emotion(tmp_path: Path):
    summary = RunSummary(fps=None)  # photos: every frame at t 0, no time axis to draw
    for i, emotion in enumerate([3, 3, 4, 3]):
        summary.add(0.0, face_records(i, 0.0, faces([-1], [emotion])))
    summary.write(tmp_path / "s.json", tmp_path / "s.png")
    chart = cv2.imread(str(tmp_path / "s.png"))
    assert chart.shape == (350, 700, 3)  # the bar chart, not the 1000 px wide chart over time

    def pixels(emotion: str) -> int:
        return int(np.all(chart == EMOTION_COLORS.by_idx(EMOTIONS.index(emotion)).as_bgr(), axis=2).sum())

    assert pixels("happy") == pytest.approx(3 * pixels("sad"), rel=0.05) and pixels("angry") == 0


def test_an_outage_between_frames_is_not_counted_as_time_a_face_was_seen(tmp_path: Path):
    summary = RunSummary(fps=10.0)
    for t_s in (0.0, 0.1, 60.1, 60.2):  # a stream that reconnects after a minute
        summary.add(t_s, records(t_s, [4], [3]))
    assert summary.to_dict()["tracks"][0]["emotion_s"] == {"happy": 5.3}  # 0.1 + 0.1 + at most 5 s + 0.1
    slow = RunSummary(fps=30.0)  # a live camera read by a slow pipeline: 1.5 s between frames, no outage
    for t_s in (0.0, 1.5, 3.0):
        slow.add(t_s, records(t_s, [4], [3]))
    assert slow.to_dict()["tracks"][0]["emotion_s"] == {"happy": 3.03}
    strided = RunSummary(fps=0.5)  # every 60th frame of a 30 fps file: each frame stands for 2 s
    for t_s in (0.0, 2.0, 4.0):
        strided.add(t_s, records(t_s, [4], [3]))
    assert strided.to_dict()["tracks"][0]["emotion_s"] == {"happy": 6.0}


def test_no_chart_is_drawn_for_a_run_without_faces(tmp_path: Path):
    earlier = RunSummary(fps=10.0)
    earlier.add(0.0, records(0.0, [4], [3]))
    earlier.write(tmp_path / "s.json", tmp_path / "s.png")
    assert (tmp_path / "s.png").is_file()
    summary = RunSummary(fps=10.0)  # written again to the same paths (a batch output made again)
    for i in range(30):
        summary.add(i / 10, [])
    summary.write(tmp_path / "s.json", tmp_path / "s.png")
    assert json.loads((tmp_path / "s.json").read_text())["faces"] == 0
    assert not (tmp_path / "s.png").exists()


def test_video_sink_that_cannot_open_is_a_clear_error_and_publishes_nothing(tmp_path: Path):
    with pytest.raises(FerYoloError, match="cannot write"), VideoSink(tmp_path / "v.mp4", 25.0, (0, 0)):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_summary_of_a_day_long_stream_keeps_every_face_in_bounded_memory(tmp_path: Path):
    from fer_yolo.sinks import MAX_CHART_BUCKETS, EmotionSeconds

    summary, day = RunSummary(fps=1.0), 30 * 3600  # a camera watched for 30 hours, one frame a second
    for t in range(day):
        summary.add(float(t), records(float(t), [4], [3 if t < day // 2 else 4]))
    buckets = summary.seconds.buckets
    assert len(buckets) <= MAX_CHART_BUCKETS and summary.seconds.width == 32  # 3,375 buckets of 32 s
    assert sum(buckets.values(), Counter()) == Counter({"happy": day // 2, "sad": day // 2})
    summary.write(tmp_path / "s.json", tmp_path / "s.png")
    out = json.loads((tmp_path / "s.json").read_text())
    assert out["faces"] == day and out["emotions"] == {"happy": day // 2, "sad": day // 2}
    assert out["tracks"][0]["emotion_s"] == {"happy": day / 2, "sad": day / 2}
    assert cv2.imread(str(tmp_path / "s.png")).shape == (350, 1000, 3)
    sparse = EmotionSeconds(8)  # frames far apart (a slow pipeline): one frame may need several doublings
    for t in [*range(0, 129, 16), 1000, 2000, 3000]:
        sparse.add(float(t), ["happy"])
        assert len(sparse.buckets) <= 8
    assert sparse.width == 32 and sparse.total() == Counter({"happy": 12})


def test_the_live_pages_rolling_window_forgets_old_seconds_and_their_counts():
    from fer_yolo.sinks import EmotionSeconds

    seconds = EmotionSeconds()
    for t in range(100):
        seconds.add(t + 0.5, ["happy", "sad"] if t < 50 else ["fear"])
    seconds.drop_before(70)
    assert sorted(seconds.buckets) == list(range(70, 100)) and seconds.width == 1
    assert seconds.total() == Counter({"fear": 30})
