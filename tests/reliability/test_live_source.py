"""A live source survives its RTSP server going away and coming back (issue 29's probe of a real server
on loopback: the source reconnects and frames flow again)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fer_yolo.sources import LiveSource
from tests.helpers.rtsp import NEEDS_GST_RTSP, free_port, start_rtsp_server

pytestmark = NEEDS_GST_RTSP


@pytest.mark.slow
def test_live_source_reconnects_after_the_server_restarts(media: Path):
    clip, port = media / "face_recognition/short_hamilton_clip.mp4", free_port()
    server = start_rtsp_server(clip, port)
    source = LiveSource(f"rtsp://127.0.0.1:{port}/clip", max_backoff_s=1.0, timeout_s=3.0)
    try:
        assert source.info.resolution_wh == (640, 360) and source.info.live
        frames, restarted, t0 = iter(source), False, time.monotonic()
        before = after = 0
        for frame in frames:
            assert frame.image.shape == (360, 640, 3)
            if not restarted:
                before += 1
                if before == 20:  # the stream works: kill the server, bring it back on the same port
                    assert source.lost == 0
                    server.kill()
                    server.wait()
                    while not source.lost:  # the source says it lost the stream and is reconnecting
                        assert time.monotonic() - t0 < 60, "the lost stream was not noticed"
                        time.sleep(0.1)
                    server = start_rtsp_server(clip, port)
                    restarted = True
            else:
                after += 1
                if after == 20:
                    break
            assert time.monotonic() - t0 < 90, "no frames after the server came back"
        assert source.reconnects >= 1 and after == 20 and source.lost == 0
    finally:
        source.close()
        server.kill()
        server.wait()
