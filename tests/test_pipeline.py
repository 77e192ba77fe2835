"""The pipeline end to end on real media: shipped face weights + the mini-Xception head (emotion baseline)."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
import torch
from PIL import Image

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.config import load_config
from fer_yolo.emotion.labels import EMOTION_KEY, EMOTION_PROBS_KEY, EMOTIONS
from fer_yolo.errors import ConfigError
from fer_yolo.pipeline import Pipeline
from fer_yolo.runner import run
from fer_yolo.sources import ArraySource, VideoFileSource
from tests.helpers.drawing import assert_boxes_drawn
from tests.helpers.marks import NO_WEBCAM


@pytest.fixture(scope="module")
def cfg(face_weights: Path, emotion_weights: Path) -> dict:
    over = {
        "detector_weights": str(face_weights),
        "emotion_weights": str(emotion_weights),
        "device": "cpu",
    }
    return load_config(overrides={"pipeline": over})


@pytest.fixture(scope="module")
def pipeline(cfg: dict) -> Pipeline:
    return Pipeline.from_config(cfg["pipeline"])


def stream_cfg(cfg: dict, source: Path, out: Path, **over) -> dict:
    return {**cfg["stream"], "source": str(source), "project": str(out), "name": "run", **over}


def test_multi_face_photo_gets_one_result_per_face(pipeline: Pipeline, media: Path):
    check_multi_face_photo(pipeline, media)


def test_loading_and_running_the_shipped_pipeline_is_offline(media: Path, no_network: list):
    pipeline = Pipeline.from_config(load_config(overrides={"pipeline": {"device": "cpu"}})["pipeline"])
    check_multi_face_photo(pipeline, media)
    assert no_network == []


def test_grey_and_bgra_frames_give_the_faces_of_the_bgr_frame_and_bad_frames_clear_errors(
    pipeline: Pipeline, media: Path
):
    bgr = cv2.imread(str(media / "face_recognition/obama.jpg"))
    expected, _ = pipeline.process(bgr)
    for frame in (cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)):
        faces, _ = pipeline.process(frame)
        assert len(faces) == len(expected) == 1
        assert sv.box_iou_batch(faces.xyxy, expected.xyxy)[0, 0] > (0.99 if frame.ndim == 3 else 0.8)
    (result,) = pipeline.run(ArraySource([cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)]), annotator=FaceAnnotator())
    assert result.annotated.shape == bgr.shape  # annotated in colour, as the video writer takes it
    for bad, message in [
        (None, "is None"),
        (bgr.astype(np.float32), "8-bit"),
        (bgr[:0], "shape"),
        (np.zeros((4, 4, 2), np.uint8), "shape"),
        (str(media / "face_recognition/obama.jpg"), "cv2.imread it first"),  # what ultralytics takes
        (Image.fromarray(bgr[..., ::-1]), r"np.asarray\(image\)\[..., ::-1\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            pipeline.process(bad)


def test_a_library_caller_gets_the_defaults_checked_settings_and_sources_by_name(
    face_weights: Path, emotion_weights: Path, media: Path, tmp_path: Path
):
    threads = torch.get_num_threads(), cv2.getNumThreads()
    n = 3 if 3 not in threads else 5  # a count neither library has now
    try:  # settings left out take their defaults; `threads` applies to the process, as --threads does
        over = {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights), "threads": n}
        pipeline = Pipeline.from_config({"pipeline": over | {"conf": 0.5}})  # a whole config works too
        assert (pipeline.conf, pipeline.max_faces) == (0.5, load_config()["pipeline"]["max_faces"])
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (n, n)
    finally:
        torch.set_num_threads(threads[0]), cv2.setNumThreads(threads[1])
    wrong = [
        ({"conff": 0.5}, r"did you mean pipeline\.conf or pipeline\.low_conf\?"),
        ({"conf": 2.0}, r"pipeline\.conf must be in \[0,"),
    ]
    for bad, message in wrong:
        with pytest.raises(ConfigError, match=message):  # as --set checks them
            Pipeline.from_config(bad)
    shutil.copy(media / "face_recognition/obama.jpg", tmp_path / "a.jpg")
    clip = media / "sihanwang_video/test.mp4"
    results = list(pipeline.run([tmp_path, clip]))  # opened, run and closed in turn: images, then the video
    assert [r.frame.name for r in results[:1]] == [str(tmp_path / "a.jpg")] and len(results[0].faces) == 1
    assert len(results) == 1 + cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT)
    assert results[1].frame.index == 0 and results[-1].faces.tracker_id is not None


def test_the_fer_mini_xception_runs_as_the_emotion_head(cfg: dict, mini_xception_hdf5: Path, media: Path):
    pipeline = Pipeline.from_config(cfg["pipeline"] | {"emotion_weights": str(mini_xception_hdf5)})
    assert pipeline.classifier.preprocess.input_size == 64  # the hdf5 is read, not the shipped head
    check_multi_face_photo(pipeline, media)


def check_multi_face_photo(pipeline: Pipeline, media: Path) -> None:
    image = cv2.imread(str(media / "facenet_pytorch/multiface.jpg"))
    faces, latency = pipeline.process(image)
    assert len(faces) == 6  # the TV-cast photo has 6 faces
    probs = faces.data[EMOTION_PROBS_KEY]
    assert probs.shape == (6, len(EMOTIONS)) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert list(faces.data[EMOTION_KEY]) == [EMOTIONS[i] for i in probs.argmax(1)]
    assert faces.tracker_id is None and set(latency) == {"detect", "track", "classify", "total"}
    blank = np.full((480, 640, 3), 127, np.uint8)
    assert len(pipeline.process(blank)[0]) == 0


def test_run_annotates_times_and_records_each_frame(pipeline: Pipeline, media: Path):
    """The one frame path: a source's frames come back detected, tracked, classified and drawn, with the
    time of each stage, and as the records outputs write."""
    image = cv2.imread(str(media / "facenet_pytorch/multiface.jpg"))
    source = ArraySource([image, image, image], fps=10.0, name="still")
    results = list(pipeline.run(source, annotator=FaceAnnotator(show_fps=False)))
    assert [r.frame.index for r in results] == [0, 1, 2] and [r.frame.t_s for r in results] == [0.0, 0.1, 0.2]
    for r in results:
        assert set(r.latency_ms) == {"detect", "track", "classify", "annotate", "total"}
        assert r.latency_ms["total"] >= r.latency_ms["annotate"] > 0
        assert r.faces.tracker_id is not None and len(r.faces) == 6  # a video: tracked
        assert_boxes_drawn(r.annotated, image, r.faces.xyxy)
        records = r.records()
        assert [rec.emotion for rec in records] == list(r.faces.data[EMOTION_KEY])
        assert [rec.frame for rec in records] == [r.frame.index] * 6
    assert results[0].fps is None and results[2].fps > 0
    plain = next(pipeline.run(ArraySource([image])))
    assert plain.annotated is None and plain.faces.tracker_id is None  # images: on their own


def test_max_faces_keeps_the_most_confident_faces_with_either_detector(cfg: dict, media: Path):
    image = cv2.imread(str(media / "facenet_pytorch/multiface.jpg"))  # 6 faces
    for detector in ("yolo", "mtcnn"):
        every = Pipeline.from_config(cfg["pipeline"] | {"detector": detector}).process(image)[0]
        two = Pipeline.from_config(cfg["pipeline"] | {"detector": detector, "max_faces": 2})
        kept = two.fork().process(image)[0]
        assert len(every) == 6 and len(kept) == 2
        assert np.allclose(np.sort(kept.confidence), np.sort(every.confidence)[-2:])
    library = Pipeline(two.detector, two.classifier)  # a library caller's pipeline gets the CLI's limit
    assert library.max_faces == load_config()["pipeline"]["max_faces"] == library.fork().max_faces


def test_yolo_only_settings_given_with_mtcnn_are_reported_as_ignored(cfg: dict, caplog):
    mtcnn = cfg["pipeline"] | {"detector": "mtcnn", "detector_weights": ""}
    with caplog.at_level("WARNING", logger="fer_yolo.pipeline"):
        Pipeline.from_config(mtcnn)
        assert not caplog.records
        Pipeline.from_config(mtcnn | {"imgsz": 640, "iou": 0.5})  # iou is at its default
    assert [r.getMessage() for r in caplog.records] == ["ignored with detector mtcnn (YOLO only): imgsz=640"]


@pytest.mark.slow
def test_stream_of_a_real_video_writes_video_timeline_and_summary(
    cfg: dict, pipeline: Pipeline, media, tmp_path
):
    clip = media / "sihanwang_video/test.mp4"  # 1280x720, 29.3 fps, 132 frames, one person facing the camera
    report = run(pipeline, stream_cfg(cfg, clip, tmp_path), quiet=True)
    out = report.run_dir
    cap = cv2.VideoCapture(str(out / "test.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 132
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (1280, 720)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(29.3, abs=0.05)
    records = [json.loads(line) for line in (out / "test.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(132))  # one row per frame
    with_face = [r for r in records if r["faces"]]
    assert len(with_face) >= 0.9 * 132
    ids = Counter(f["track_id"] for r in records for f in r["faces"])
    assert ids.most_common(1)[0][1] >= 0.85 * 132  # one face, one id for nearly the whole clip
    summary = json.loads((out / "test_summary.json").read_text())
    main = max(summary["tracks"], key=lambda t: t["frames"])
    assert main["dominant_emotion"] in EMOTIONS and sum(main["emotion_s"].values()) == pytest.approx(
        main["frames"] / 29.3, abs=0.05
    )
    assert (out / "test_emotions.png").is_file() and (out / "test.csv").is_file()
    assert report.sources[0]["frames"] == 132 and not report.interrupted
    assert "incomplete" not in report.sources[0]  # a whole file is not reported as cut off


def test_an_error_mid_run_keeps_the_frames_before_it_and_says_why_they_end(
    cfg: dict, pipeline: Pipeline, media, tmp_path, monkeypatch
):
    results = pipeline.run

    def fails_at_frame_5(source, batch=1, annotator=None):
        for i, result in enumerate(results(source, batch, annotator)):
            if i == 5:
                raise OSError(28, "No space left on device")
            yield result

    monkeypatch.setattr(pipeline, "run", fails_at_frame_5)
    with pytest.raises(OSError, match="No space"):
        run(pipeline, stream_cfg(cfg, media / "sihanwang_video/test.mp4", tmp_path), quiet=True)
    report = json.loads((tmp_path / "run/report.json").read_text())
    assert report["error"] == "OSError: [Errno 28] No space left on device"
    assert len((tmp_path / "run/test.jsonl").read_text().splitlines()) == 5
    assert cv2.VideoCapture(str(tmp_path / "run/test.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 5


def test_a_video_that_cannot_be_written_leaves_no_other_output(
    cfg: dict, pipeline: Pipeline, media, tmp_path, monkeypatch
):
    from fer_yolo import runner
    from fer_yolo.errors import FerYoloError
    from fer_yolo.sinks import VideoSink

    class Unwritable(VideoSink):  # e.g. a codec the OpenCV build lacks
        def __init__(self, path, fps, resolution_wh) -> None:
            super().__init__(path, fps, (0, 0))

    monkeypatch.setattr(runner, "VideoSink", Unwritable)
    clip = media / "sihanwang_video/test.mp4"
    stream = stream_cfg(cfg, clip, tmp_path)
    with pytest.raises(FerYoloError, match="cannot write"), VideoFileSource(clip) as source:
        runner.process_source(pipeline, source, stream, tmp_path, "test", FaceAnnotator())
    assert list(tmp_path.iterdir()) == []  # no empty timeline beside the error


def test_an_error_that_ends_a_run_is_not_hidden_by_a_ctrl_c_while_it_finishes(
    cfg: dict, pipeline: Pipeline, media, tmp_path, monkeypatch
):
    from fer_yolo import runner
    from fer_yolo.sinks import TimelineSink

    def broken(*args, **kwargs):  # the pipeline fails after two frames
        for k, result in enumerate(Pipeline.run(pipeline, *args, **kwargs)):
            if k == 2:
                raise RuntimeError("the detector failed")
            yield result

    finish = TimelineSink.__exit__

    def ctrl_c_then_finish(self, *exc):
        signal.raise_signal(signal.SIGINT)  # lands as the outputs are being finished
        finish(self, *exc)

    monkeypatch.setattr(pipeline, "run", broken)
    monkeypatch.setattr(TimelineSink, "__exit__", ctrl_c_then_finish)
    clip = media / "sihanwang_video/test.mp4"
    stream = stream_cfg(cfg, clip, tmp_path, save=False)
    with pytest.raises(RuntimeError, match="the detector failed"), VideoFileSource(clip) as source:
        runner.process_source(pipeline, source, stream, tmp_path, "test", FaceAnnotator())


def test_a_ctrl_c_while_a_source_handles_an_error_stops_the_run_as_interrupted(
    cfg: dict, pipeline: Pipeline, media, tmp_path, monkeypatch
):
    from fer_yolo import runner

    def skipping(*args, **kwargs):  # Ctrl-C lands as a folder source logs an image it cannot read
        for k, result in enumerate(Pipeline.run(pipeline, *args, **kwargs)):
            if k == 2:
                try:
                    raise OSError("unreadable image")
                except OSError:
                    raise KeyboardInterrupt from None
            yield result

    monkeypatch.setattr(pipeline, "run", skipping)
    clip = media / "sihanwang_video/test.mp4"
    stream = stream_cfg(cfg, clip, tmp_path, save=False)
    with pytest.raises(runner._Interrupted) as stopped, VideoFileSource(clip) as source:
        runner.process_source(pipeline, source, stream, tmp_path, "test", FaceAnnotator())
    assert stopped.value.report["frames"] == 2
    assert len((tmp_path / "test.jsonl").read_text().splitlines()) == 2


def test_ctrl_c_while_the_summary_is_written_keeps_it_and_the_sources_report(
    cfg: dict, pipeline: Pipeline, media, tmp_path, monkeypatch
):
    from fer_yolo.sinks import RunSummary

    write = RunSummary.write

    def ctrl_c_then_write(self, *args):  # Ctrl-C as the video has ended and its summary is being written
        signal.raise_signal(signal.SIGINT)
        write(self, *args)

    monkeypatch.setattr(RunSummary, "write", ctrl_c_then_write)
    report = run(pipeline, stream_cfg(cfg, media / "sihanwang_video/test.mp4", tmp_path), quiet=True)
    assert report.interrupted and report.sources[0]["frames"] == 132
    summary = json.loads((report.run_dir / "test_summary.json").read_text())
    assert summary["faces"] == report.sources[0]["faces"] > 0
    assert len((report.run_dir / "test.jsonl").read_text().splitlines()) == 132


def test_ctrl_c_between_a_frames_writes_leaves_every_output_with_the_same_frames(
    cfg: dict, pipeline: Pipeline, media, tmp_path, monkeypatch
):
    from fer_yolo.sinks import TimelineSink

    write = TimelineSink.write

    def write_then_ctrl_c(self, frame_index, *args):  # Ctrl-C after frame 5's timeline, before its video
        write(self, frame_index, *args)
        if frame_index == 5:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(TimelineSink, "write", write_then_ctrl_c)
    clip = media / "sihanwang_video/test.mp4"
    report = run(pipeline, stream_cfg(cfg, clip, tmp_path), quiet=True)
    out = report.run_dir
    lines = (out / "test.jsonl").read_text().splitlines()
    with (out / "test.csv").open() as f:
        csv_frames = {row["frame"] for row in csv.DictReader(f)}
    assert report.interrupted and report.sources[0]["frames"] == len(lines) == 6
    assert cv2.VideoCapture(str(out / "test.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert csv_frames <= {str(i) for i in range(6)} and "5" in csv_frames


def test_predict_folder_writes_annotated_images_and_json(cfg: dict, pipeline: Pipeline, media, tmp_path):
    report = run(pipeline, stream_cfg(cfg, media / "face_recognition/*.jpg", tmp_path), quiet=True)
    out = report.run_dir
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    counts = {Path(r["source"]).name: len(r["faces"]) for r in records}
    assert (
        counts["obama.jpg"] == 1 and counts["kit_with_rose.jpg"] == 2 and counts["alex_lacamoire1.jpg"] == 1
    )
    for r in records:
        name = Path(r["source"]).name
        boxes = np.array([[f["x1"], f["y1"], f["x2"], f["y2"]] for f in r["faces"]]).reshape(-1, 4)
        original = cv2.imread(str(media / "face_recognition" / name))
        assert_boxes_drawn(cv2.imread(str(out / "images" / name)), original, boxes)
    with (out / "predictions.csv").open() as f:  # each face's row names its photo
        rows = Counter(Path(row["file"]).name for row in csv.DictReader(f))
    assert rows == {name: n for name, n in counts.items() if n}
    summary = json.loads((out / "predictions_summary.json").read_text())
    top = Counter(f["emotion"] for r in records for f in r["faces"])
    assert summary["faces"] == report.sources[0]["faces"] == sum(counts.values()) == sum(top.values())
    assert summary["emotions"] == {e: top[e] for e in EMOTIONS if top[e]} and summary["tracks"] == []


def test_a_second_run_on_a_folder_does_not_read_the_first_runs_outputs(
    cfg: dict, pipeline: Pipeline, media, tmp_path
):
    shutil.copy(media / "face_recognition/obama.jpg", tmp_path / "obama.jpg")
    # `cd photos && fer-yolo predict . --project runs` twice: the first run's annotated copy is in the folder
    reports = [run(pipeline, stream_cfg(cfg, tmp_path, tmp_path / "runs"), quiet=True) for _ in range(2)]
    # and `fer-yolo predict . --project .` twice: the run folders are then in the folder read
    (here := tmp_path / "here").mkdir()
    shutil.copy(media / "face_recognition/obama.jpg", here / "obama.jpg")
    (here / "mine").mkdir()  # a folder of the user's with a report.json of its own is still read
    shutil.copy(media / "face_recognition/obama.jpg", here / "mine/obama.jpg")
    (here / "mine/report.json").write_text('{"converted": 1}')
    first = run(pipeline, stream_cfg(cfg, here, here), quiet=True).run_dir
    first.rename(here / "take1")  # a run folder the user renamed is still a run folder
    reports.append(run(pipeline, stream_cfg(cfg, here, here), quiet=True))
    assert (reports[0].run_dir / "images/obama.jpg").is_file() and reports[2].run_dir.parent == here
    for folder in [r.run_dir for r in reports] + [here / "take1"]:
        records = (folder / "predictions.jsonl").read_text().splitlines()
        expected = ["obama.jpg"] * (2 if folder.parent == here else 1)
        assert [Path(json.loads(line)["source"]).name for line in records] == expected


def test_folder_run_reports_the_files_it_could_not_read(cfg: dict, pipeline: Pipeline, media, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(media / "face_recognition/obama.jpg", folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "broken.mp4").write_bytes(b"not a video")
    clip = (media / "sihanwang_video/test.mp4").read_bytes()  # 132 frames
    (folder / "cut.mp4").write_bytes(clip[:20_000])  # opens (its header is whole), no frame decodes
    (folder / "half.mp4").write_bytes(clip[: len(clip) // 2])  # its first 60 frames decode
    report = run(pipeline, stream_cfg(cfg, folder, tmp_path), quiet=True)
    saved = json.loads((report.run_dir / "report.json").read_text())
    ran = {role: cfg["pipeline"][f"{role}_weights"] for role in ("detector", "emotion")}
    assert saved["weights"] == ran  # the files that ran, for whoever reads the outputs later
    skipped = {Path(s["file"]).name: s["reason"] for s in saved["skipped"]}
    assert sorted(skipped) == ["broken.mp4", "cut.mp4"] and "no frame could be decoded" in skipped["cut.mp4"]
    assert not list(report.run_dir.glob("cut*"))  # no empty video, timeline or summary
    sources = {Path(s["source"]).name: s for s in saved["sources"]}
    assert sources["half.mp4"]["frames"] == 60 and "decoded 60 of 132" in sources["half.mp4"]["incomplete"]
    assert [Path(f).name for f, _ in sources["in"]["skipped"]] == ["broken.jpg"]
    assert sources["in"]["images"] == 1
    unsaved = run(pipeline, stream_cfg(cfg, folder / "*.jpg", tmp_path, save=False), quiet=True)
    assert unsaved.sources[0]["images"] == 1 and not (unsaved.run_dir / "images").exists()


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fer_yolo.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _stream(cfg: dict, clip: Path, run_dir: Path) -> subprocess.Popen:
    """`fer-yolo stream CLIP` into run_dir with the test weights, in a subprocess."""
    weights = cfg["pipeline"]
    return _cli(
        *(
            "stream",
            str(clip),
            "--project",
            str(run_dir.parent),
            "--name",
            run_dir.name,
            "--device",
            "cpu",
            "-q",
        ),
        *("--weights", weights["detector_weights"], "--emotion-weights", weights["emotion_weights"]),
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/no/such/clip.mp4", "source not found"),
        pytest.param("0", "cannot open webcam 0", marks=NO_WEBCAM),
    ],
)
def test_cli_reports_unopenable_sources_without_traceback(
    source: str, message: str, cfg: dict, tmp_path: Path
):
    proc = _cli(
        "stream", source, "--project", str(tmp_path), "--emotion-weights", cfg["pipeline"]["emotion_weights"]
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and message in err and "Traceback" not in err and "WARN" not in err
    assert list(tmp_path.iterdir()) == []  # no empty run folder for the next run to count past


def test_cli_fails_when_no_source_yields_a_frame(cfg: dict, media: Path, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "cut.mp4").write_bytes((media / "sihanwang_video/test.mp4").read_bytes()[:20_000])
    weights = cfg["pipeline"]
    proc = _cli(
        *("predict", str(folder), "--project", str(tmp_path / "runs"), "--device", "cpu"),
        *("--weights", weights["detector_weights"], "--emotion-weights", weights["emotion_weights"]),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "Traceback" not in err
    assert "broken.jpg: skipped, not an image" in out and "cut.mp4: skipped, no frame could be decoded" in out
    assert "no source could be read" in err and "h264" not in err  # FFmpeg's own complaints stay quiet
    saved = json.loads((tmp_path / "runs/exp/report.json").read_text())
    assert sorted(Path(s["file"]).name for s in saved["skipped"]) == ["broken.jpg", "cut.mp4"]
    assert saved["sources"] == []


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_finalises_every_output(signum, cfg: dict, media: Path, tmp_path: Path):
    clip = media / "taiwan_vlog/vlog.mp4"  # 1,504 frames: far from done when interrupted
    proc = _stream(cfg, clip, tmp_path / "run")
    deadline = time.time() + 120
    while not (written := _frames_written(tmp_path / "run", "vlog")) > 10:  # interrupt mid-stream
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"stream wrote {written} frames in 120 s (exit code {proc.poll()})")
        time.sleep(0.2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    lines = (tmp_path / "run/vlog.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 1504
    frames = cv2.VideoCapture(str(tmp_path / "run/vlog.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)
    assert frames == len(lines)
    report = json.loads((tmp_path / "run/report.json").read_text())
    assert report["interrupted"] and report["sources"][0]["frames"] == len(lines)
    assert (tmp_path / "run/vlog_summary.json").is_file()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def _frames_written(run: Path, stem: str) -> int:
    """Lines in the timeline a running stream is writing (its hidden temporary file), 0 if none yet."""
    for tmp in run.glob(f".{stem}.jsonl.*"):
        try:
            with tmp.open() as f:
                return sum(1 for _ in f)
        except FileNotFoundError:  # renamed into place meanwhile
            break
    return 0


def _rss_mb(pid: int) -> float | None:
    """Resident memory of a running process in MB; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(rss[0]) / 1024 if rss else None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory use from /proc")
def test_long_stream_keeps_memory_flat(cfg: dict, media: Path, tmp_path: Path):
    clip, looped = media / "face_recognition/short_hamilton_clip.mp4", tmp_path / "looped.mp4"
    writer = cv2.VideoWriter(str(looped), cv2.VideoWriter_fourcc(*"mp4v"), 30, (640, 360))
    for _ in range(8):  # 8 x 275 = 2,200 frames
        cap = cv2.VideoCapture(str(clip))
        while (frame := cap.read()[1]) is not None:
            writer.write(frame)
    writer.release()
    proc = _stream(cfg, looped, tmp_path / "run")
    samples = {}  # frames written -> MB
    while proc.poll() is None:
        frames = _frames_written(tmp_path / "run", "looped")
        if frames > 300 and (mb := _rss_mb(proc.pid)) is not None:  # after warm-up: pools are sized
            samples[frames] = mb
        time.sleep(0.5)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert len((tmp_path / "run/looped.jsonl").read_text().splitlines()) == 2200
    assert max(samples) - min(samples) > 1000, samples  # measured over most of the stream
    mb = list(samples.values())
    assert max(mb) - mb[0] < 40, samples


def test_batched_file_processing_matches_frame_by_frame(pipeline: Pipeline, media: Path):
    clip = media / "face_recognition/short_hamilton_clip.mp4"
    results = {}
    for batch in (1, 4):
        with VideoFileSource(clip) as source:
            results[batch] = [r for _, r in zip(range(30), pipeline.run(source, batch=batch))]
    assert [r.frame.index for r in results[1]] == [r.frame.index for r in results[4]] == list(range(30))
    assert sum(len(r.faces) for r in results[1]) >= 30  # faces to compare in (nearly) every frame
    for a, b in zip(results[1], results[4]):
        assert len(a.faces) == len(b.faces)
        assert np.allclose(a.faces.xyxy, b.faces.xyxy, atol=1.0)
        assert (a.faces.tracker_id == b.faces.tracker_id).all()
        assert np.allclose(a.faces.data[EMOTION_PROBS_KEY], b.faces.data[EMOTION_PROBS_KEY], atol=0.02)


def test_classifying_each_track_every_other_frame_halves_the_heads_work(cfg: dict, media: Path, monkeypatch):
    cap = cv2.VideoCapture(str(media / "facenet_pytorch/video.mp4"))  # pedestrians, several faces a frame
    frames = [cap.read()[1] for _ in range(40)]
    cap.release()
    seen = {}
    for every in (1, 2):
        pipeline = Pipeline.from_config(cfg["pipeline"] | {"classify_every": every})
        original = pipeline.classifier.classify_frames
        read = []

        def counted(images, faces, original=original, read=read):
            read.append(sum(len(f) for f in faces))
            return original(images, faces)

        monkeypatch.setattr(pipeline.classifier, "classify_frames", counted)
        shown = []
        for i, frame in enumerate(frames):
            faces, _ = pipeline.process(frame, i / 25, track=True)
            probs = faces.data["emotion_probs"]
            assert probs.shape == (len(faces), 7) and np.allclose(probs.sum(1), 1, atol=1e-4)  # every face
            shown.append(len(faces))
        seen[every] = (sum(read), sum(shown))
    assert seen[1][0] == seen[1][1] > 100  # every face of every frame read
    assert seen[2][1] == seen[1][1] and 0.4 * seen[2][1] < seen[2][0] < 0.7 * seen[2][1]
