"""A real RTSP server on loopback for the tests: GStreamer's gst-rtsp-server streaming an H.264 clip.

Run with the system Python that has Debian's python3-gi and gir1.2-gst-rtsp-server-1.0 (.ci/run installs
them):  /usr/bin/python3 tests/helpers/rtsp_server.py CLIP.mp4 PORT
serves rtsp://127.0.0.1:PORT/clip at the clip's real rate, the clip looping for each new client.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(clip: str, port: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{clip}" loop=true ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/clip", factory)
    server.attach(None)
    print(f"rtsp://127.0.0.1:{port}/clip", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
