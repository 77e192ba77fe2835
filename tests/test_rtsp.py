"""A real RTSP server on loopback (GStreamer): the live source reads it, survives its restart, reconnects."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fer_yolo.sources import LiveSource

SERVER = Path(__file__).parent / "helpers" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _has_gst_rtsp() -> bool:
    if not shutil.which(SYSTEM_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _has_gst_rtsp(),
    reason="GStreamer RTSP server missing: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad (.ci/run does)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(clip: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVER), str(clip), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().startswith("rtsp://")  # listening
    return proc


@pytest.mark.slow
def test_live_source_reconnects_after_the_server_restarts(media: Path):
    clip, port = media / "face_recognition/short_hamilton_clip.mp4", _free_port()
    server = _start(clip, port)
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
                    server.kill()
                    server.wait()
                    time.sleep(1.0)
                    server = _start(clip, port)
                    restarted = True
            else:
                after += 1
                if after == 20:
                    break
            assert time.monotonic() - t0 < 90, "no frames after the server came back"
        assert source.reconnects >= 1 and after == 20
    finally:
        source.close()
        server.kill()
        server.wait()
