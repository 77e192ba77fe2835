"""A real RTSP server on loopback (GStreamer, run by the system Python) for the tests that need one."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

SERVER = Path(__file__).parent / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def has_gst_rtsp() -> bool:
    """Whether the system Python can run the server (python3-gi and GstRtspServer installed)."""
    if not shutil.which(SYSTEM_PYTHON):
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


#: For the tests that need the server.
NEEDS_GST_RTSP = pytest.mark.skipif(
    not has_gst_rtsp(),
    reason="GStreamer RTSP server missing: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad (.ci/run does)",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_rtsp_server(clip: Path, port: int) -> subprocess.Popen:
    """Serve `clip` at rtsp://127.0.0.1:PORT/clip; returns once the server listens (kill it when done)."""
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(SERVER), str(clip), str(port)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().startswith("rtsp://")  # listening
    return proc
