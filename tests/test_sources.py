"""Frame sources on real media: counts, strides, folders, unreadable files, live capture, clear errors."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from pathlib import Path

import pytest

from fer_yolo.errors import SourceError
from fer_yolo.sources import (
    ImageSource,
    LiveSource,
    VideoFileSource,
    evenly_timed,
    expand_spec,
    is_live,
    open_sources,
    public_url,
)
from tests.helpers.marks import NO_WEBCAM
from tests.helpers.videos import write_timed_clip

CLIP = "face_recognition/short_hamilton_clip.mp4"  # 640x360, 29.97 fps, 275 frames


def test_video_file_yields_every_frame_with_media_time(media: Path):
    with VideoFileSource(media / CLIP) as source:
        frames = list(source)
    assert source.info.resolution_wh == (640, 360) and source.info.total_frames == 275
    assert len(frames) == 275 and [f.index for f in frames[:3]] == [0, 1, 2]
    assert frames[0].image.shape == (360, 640, 3)
    assert frames[-1].t_s == pytest.approx(274 / 29.97, abs=0.01)


def test_variable_frame_rate_video_keeps_its_presentation_times(media: Path, tmp_path: Path):
    times_ms = [0, 40, 80, 120, 600, 640, 680, 1500, 1540]  # a phone's camera slowing down in the dark, twice
    path = write_timed_clip(tmp_path / "vfr.mp4", times_ms)
    with VideoFileSource(path) as source:
        assert [f.t_s for f in source] == pytest.approx([t / 1000 for t in times_ms], abs=1e-3)
    # its frames cannot be sought by index (OpenCV seeks to index / fps): batch keeps such a video whole
    assert not evenly_timed(path) and evenly_timed(media / CLIP)
    steady = write_timed_clip(tmp_path / "steady.mp4", list(range(0, 360, 40)))
    assert evenly_timed(steady) and not evenly_timed(tmp_path / "missing.mp4")


def test_video_decoding_uses_opencvs_thread_count(media: Path):
    import cv2

    before = cv2.getNumThreads()
    try:
        for threads in (1, 2):  # a batch worker of 1 CPU sets 1: FFmpeg's own default is every core
            cv2.setNumThreads(threads)
            with VideoFileSource(media / CLIP, start_frame=100) as source:
                assert source.cap.get(cv2.CAP_PROP_N_THREADS) == threads and next(iter(source)).index == 100
    finally:
        cv2.setNumThreads(before)


def test_vid_stride_keeps_every_nth_frame(media: Path):
    with VideoFileSource(media / CLIP, vid_stride=4) as source:
        frames = list(source)
    assert source.info.total_frames == len(frames) == 69  # ceil(275 / 4)
    assert [f.index for f in frames[:3]] == [0, 4, 8]
    assert source.info.fps == pytest.approx(29.97 / 4, abs=0.01)
    with pytest.raises(ValueError, match="vid_stride must be >= 1, got 0"):
        VideoFileSource(media / CLIP, vid_stride=0)  # refused from the API too, not turned into 1


@pytest.mark.parametrize("start, end, stride", [(100, 180, 1), (100, None, 4), (0, 50, 2)])
def test_segment_yields_the_whole_files_frames_indices_and_times(media: Path, start, end, stride):
    with VideoFileSource(media / CLIP, vid_stride=stride) as source:
        whole = [f for f in source if start <= f.index < (end or 275)]
    with VideoFileSource(media / CLIP, vid_stride=stride, start_frame=start, end_frame=end) as source:
        segment = list(source)
    assert source.info.total_frames == len(segment) == len(whole)
    assert [(f.index, f.t_s) for f in segment] == [(f.index, f.t_s) for f in whole]
    assert all((a.image == b.image).all() for a, b in zip(segment, whole))  # the seek lands on the frame
    with pytest.raises(ValueError, match="empty or negative"):
        VideoFileSource(media / CLIP, start_frame=10, end_frame=10)


def test_folder_gives_images_then_each_video_and_skips_unreadable(media: Path, tmp_path: Path):
    folder = tmp_path / "in put"  # a path with a space
    (folder / "sub").mkdir(parents=True)
    shutil.copy(media / "face_recognition/obama.jpg", folder / "a.jpg")
    (folder / "sub/broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "notes.txt").write_text("ignored")
    shutil.copy(media / CLIP, folder / "sub/clip.mp4")
    (folder / "sub/broken.mp4").write_bytes(b"not a video")
    skipped = []
    sources = list(open_sources(str(folder), skipped=skipped))
    assert [type(s) for s in sources] == [ImageSource, VideoFileSource]
    assert [(Path(f).name, why) for f, why in skipped] == [("broken.mp4", "cannot open as a video")]
    images = list(sources[0])
    assert [Path(f.name).name for f in images] == ["a.jpg"]
    assert [Path(p).name for p, _ in sources[0].skipped] == ["broken.jpg"]
    assert sources[1].info.stem == "clip"
    for s in sources:
        s.close()


def test_several_specs_and_a_list_give_one_image_set_then_each_video(media: Path, tmp_path: Path):
    faces = media / "face_recognition"
    again = faces / "../face_recognition/obama.jpg"  # spelled another way: still one file
    listed = [faces / "kit_with_rose.jpg", media / CLIP, tmp_path / "gone", again]
    (tmp_path / "more.txt").write_text("# from a list\n" + "".join(f"{p}\n" for p in listed))
    specs = [faces / "obama.jpg", str(faces / "obama*.jpg"), str(tmp_path / "more.txt")]  # obama.jpg 3 times
    skipped = []
    sources = list(open_sources(specs, skipped=skipped))
    assert [type(s) for s in sources] == [ImageSource, VideoFileSource]
    names = [Path(p).name for p in sources[0].paths]
    assert names == ["obama.jpg", "obama_and_biden.jpg", "kit_with_rose.jpg"]  # first mention first, once
    assert sources[0].info.name == "3 images" and sources[1].info.stem == "short_hamilton_clip"
    assert skipped == [(str(tmp_path / "gone"), "not found")]  # a list's missing entry is reported
    for s in sources:
        s.close()
    with pytest.raises(SourceError, match="source not found"):  # a typo among several is still an error
        list(open_sources([str(faces / "obama.jpg"), str(faces / "obama.jpeg")]))


def test_glob_selects_matching_files(media: Path):
    (source,) = open_sources(str(media / "face_recognition/obama*.jpg"))
    assert sorted(Path(p).name for p in source.paths) == ["obama.jpg", "obama_and_biden.jpg"]


def test_folders_and_globs_leave_out_the_output_folders_unless_asked_for_them(media: Path, tmp_path: Path):
    (tmp_path / "runs/exp/images").mkdir(parents=True)
    for copy in ("a.jpg", "runs/exp/images/a.jpg"):
        shutil.copy(media / "face_recognition/obama.jpg", tmp_path / copy)
    outputs = [tmp_path / "runs"]
    assert expand_spec(str(tmp_path), outputs) == [tmp_path / "a.jpg"]
    assert expand_spec(f"{tmp_path}/**/*.jpg", outputs) == [tmp_path / "a.jpg"]
    assert len(expand_spec(str(tmp_path))) == len(expand_spec(f"{tmp_path}/**/*.jpg")) == 2
    inside = [tmp_path / "runs/exp/images/a.jpg"]  # a folder or file inside the outputs is read when named
    assert expand_spec(str(tmp_path / "runs/exp"), outputs) == expand_spec(str(inside[0]), outputs) == inside


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("/no/such/video.mp4", "source not found"),
        pytest.param("0", "cannot open webcam 0", marks=NO_WEBCAM),
    ],
)
def test_unopenable_sources_are_clear_errors(spec: str, message: str):
    with pytest.raises(SourceError, match=message):
        list(open_sources(spec))


def test_stream_credentials_stay_out_of_names_and_errors():
    assert public_url("rtsp://admin:s3cret@10.0.0.5:554/stream1") == "rtsp://10.0.0.5:554/stream1"
    assert public_url("http://user@cam.local/x.mjpg?channel=2") == "http://cam.local/x.mjpg?channel=2"
    assert public_url("rtsp://10.0.0.5/s") == "rtsp://10.0.0.5/s"
    with pytest.raises(SourceError) as error:  # nothing listens on port 9: refused at once
        list(open_sources("rtsp://admin:s3cret@127.0.0.1:9/stream"))
    assert "rtsp://127.0.0.1:9/stream" in str(error.value) and "s3cret" not in str(error.value)


def test_a_video_file_over_http_is_read_to_its_end(media: Path):
    # http.server answers no Range requests: a clip FFmpeg reads without seeking (its index comes first)
    handler = functools.partial(QuietHandler, directory=str(media / "sihanwang_video"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://user:s3cret@127.0.0.1:{server.server_address[1]}/test.mp4"
        [source] = list(open_sources(url))
        with source:
            frames = list(source)
        assert not source.info.live and source.info.stem == "test"
        assert len(frames) == source.info.total_frames == 132 and "s3cret" not in source.info.name
    finally:
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_empty_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceError, match="no images or videos"):
        list(open_sources(str(tmp_path)))


def test_is_live():
    assert is_live("0") and is_live("rtsp://127.0.0.1:8554/x") and is_live("http://host/stream.mjpg")
    assert not is_live("https://host/recordings/clip.MP4?sig=1")  # a recorded video: read to its end
    assert not is_live("video.mp4") and not is_live("folder/")


def test_live_capture_keeps_only_the_newest_frame(media: Path):
    # A file read as a live source arrives far faster than a slow consumer takes frames: the reader thread
    # must replace unconsumed frames (counted as dropped) so the consumer never falls behind.
    source = LiveSource(str(media / CLIP), reconnect=False)
    taken = []
    with source:
        for frame in source:
            taken.append(frame.index)
            time.sleep(0.2)  # 5 frames/s taken: far slower than a decoder on any machine
    assert source.dropped > 0
    assert len(taken) + source.dropped == 275
    assert taken == sorted(taken) and taken[-1] == 274  # in order, and the last frame is the newest one


def test_file_names_with_glob_characters_are_files_not_patterns(media: Path, tmp_path: Path):
    clip = tmp_path / "clip[1].mp4"
    shutil.copy(media / CLIP, clip)
    (source,) = open_sources(str(clip))
    assert isinstance(source, VideoFileSource) and source.info.total_frames == 275
    source.close()
