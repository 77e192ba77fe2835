"""The live page's feed on a real clip: it runs while watched, stops when nobody watches, and recovers."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import pytest

from fer_yolo.config import load_config
from fer_yolo.errors import FerYoloError
from fer_yolo.pipeline import Pipeline
from fer_yolo.web.live import LiveFeed
from tests.helpers.rtsp import NEEDS_GST_RTSP, free_port, start_rtsp_server

CLIP = "sihanwang_video/test.mp4"


@pytest.fixture(scope="module")
def pipeline(face_weights: Path, emotion_weights: Path) -> Pipeline:
    over = {"pipeline": {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights)}}
    return Pipeline.from_config(load_config(overrides=over)["pipeline"])


def watch(feed: LiveFeed, frames: int) -> int:
    """View the feed as a browser tab does until `frames` JPEGs arrived (or the feed ended); the count."""

    async def viewer() -> int:
        stream, got = feed.mjpeg(), 0
        async for part in stream:
            got += part.count(b"\xff\xd8")
            if got >= frames:
                break
        await stream.aclose()  # the tab is closed
        return got

    return asyncio.run(viewer())


def wait_until(condition, seconds: float = 15.0) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_feed_runs_while_watched_and_starts_again_for_the_next_viewer(pipeline: Pipeline, media: Path):
    feed = LiveFeed(pipeline.fork(), str(media / CLIP), idle_s=0.2)
    try:
        assert not feed.stats()["running"]  # nothing runs before someone watches
        assert watch(feed, 2) == 2 and feed.stats()["running"]
        wait_until(lambda: not feed.stats()["running"])  # nobody watching: the source is closed
        seq = feed.seq
        time.sleep(0.5)
        assert feed.seq == seq  # and no frame is processed for nobody
        assert watch(feed, 2) == 2 and feed.seq >= seq + 2
    finally:
        feed.stop()


def test_a_source_that_failed_is_tried_again_by_the_next_viewer(pipeline: Pipeline, media: Path, tmp_path):
    later = tmp_path / "camera.mp4"  # not there yet: a camera that is down
    feed = LiveFeed(pipeline.fork(), str(later), idle_s=0.2)
    try:
        assert watch(feed, 1) == 0
        wait_until(lambda: feed.stats()["error"] is not None)
        assert "source not found" in feed.stats()["error"]
        shutil.copy(media / CLIP, later)  # the camera is back
        assert watch(feed, 2) == 2 and feed.stats()["error"] is None
    finally:
        feed.stop()


def test_a_viewer_returning_as_the_feed_goes_idle_waits_for_the_camera(
    pipeline: Pipeline, media: Path, monkeypatch
):
    from fer_yolo.web import live

    held, let_go = [], threading.Event()

    class Webcam:
        """A camera one reader holds at a time, and that lets go only when the test says so."""

        def __init__(self, source) -> None:
            self._source = source

        def __getattr__(self, name):
            return getattr(self._source, name)

        def __iter__(self):
            return iter(self._source)

        def __enter__(self):
            if held:
                raise FerYoloError("cannot open webcam 0", "it is in use")
            held.append(self)
            return self

        def __exit__(self, *exc) -> None:
            let_go.wait(10)
            held.remove(self)
            self._source.close()

    opener = live.open_sources
    monkeypatch.setattr(live, "open_sources", lambda spec, **kw: (Webcam(s) for s in opener(spec, **kw)))
    feed = LiveFeed(pipeline.fork(), str(media / CLIP), idle_s=0.2)
    try:
        assert watch(feed, 2) == 2
        wait_until(lambda: not feed.stats()["running"])  # gone idle: its thread is letting go of the camera
        assert held  # not yet let go when the viewer comes back
        threading.Timer(0.3, let_go.set).start()
        assert watch(feed, 2) == 2  # the viewer who came back at once sees the feed
        assert feed.stats()["error"] is None
    finally:
        feed.stop()


@NEEDS_GST_RTSP
@pytest.mark.slow
def test_the_page_says_when_its_network_stream_dropped_and_is_reconnecting(pipeline: Pipeline, media: Path):
    clip, port = media / "face_recognition/short_hamilton_clip.mp4", free_port()
    server = start_rtsp_server(clip, port)
    feed = LiveFeed(pipeline.fork(), f"rtsp://127.0.0.1:{port}/clip", idle_s=600)
    try:
        assert watch(feed, 2) == 2 and feed.stats()["reconnecting"] == 0
        thread, source = feed._thread, feed._source
        server.kill()
        server.wait()
        wait_until(lambda: feed.stats()["reconnecting"] >= 1, 30)  # the picture stands still, and it says why
        assert feed.stats()["running"] and feed.stats()["error"] is None
        server = start_rtsp_server(clip, port)
        wait_until(lambda: feed.stats()["reconnecting"] == 0, 60)
        assert feed.stats()["running"] and (feed._thread, feed._source) == (thread, source)  # the same feed
        assert source.reconnects >= 1 and watch(feed, 2) == 2
    finally:
        feed.stop()
        server.kill()
        server.wait()
