"""The `fer-yolo` command in a subprocess: exit codes, clear errors, no tracebacks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

import fer_yolo as fer_yolo_package
import fer_yolo.pipeline as pipeline_module
import fer_yolo.runner as runner_module
from fer_yolo.cli import main
from fer_yolo.utils.paths import default_weights

REPO = Path(__file__).resolve().parents[1]


def fer_yolo(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, from any folder (the checkout importable even if not installed)."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "fer_yolo.cli", *args], capture_output=True, text=True, env=env
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "emotion", "--weights", "missing.pt"], "weights file not found"),
        (
            ["eval", "emotion", "--weights", "w.pt", "--margins", "0.1", "--set", "pipeline.detector=mtcnn"],
            "--margins cuts faces from YOLO boxes, not mtcnn's",
        ),
        (["eval", "detector", "--weights", "missing.pt", "--compare"], "YOLO face weights not found"),
        (["eval", "detector", "--compare", "nope"], "unknown detector 'nope'"),
        (["eval", "detector", "--weights", "none", "--compare"], "nothing to evaluate"),
        (["train", "detector", "--data", "missing.yaml"], "data.yaml not found"),
        (["train", "emotion", "--resume", "missing_run"], "nothing to resume"),
        (
            ["train", "emotion", "--resume", "run", "--epochs", "60"],
            "--resume continues the run with its saved settings; --epochs cannot",
        ),
        (
            ["train", "detector", "--resume", "run", "--set", "train_detector.lr0=0.1"],
            "--resume continues the run with its saved settings; --config/--set",
        ),
        (["convert", "missing_dir", "-o", "out"], "input not found"),
        (["export", "--weights", "missing.pt"], "weights file not found"),
        (["export", "--int8", "--calib-size", "0"], "export.calib_size must be >= 1, got 0"),
        (["eval", "detector", "--set", "eval_detector.imgsz=8"], "eval_detector.imgsz must be in [32, 4096]"),
    ],
)
def test_errors_are_one_clear_message(args, message, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FER_YOLO_DATA", str(tmp_path))  # an empty data folder: bad arguments are found first
    result = fer_yolo(*args)
    assert result.returncode == 2
    assert f"error: {message}" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_help():
    version = fer_yolo("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"fer-yolo {fer_yolo_package.__version__}"
    usage = fer_yolo("--help")
    commands = ("convert", "train", "eval", "stream", "predict", "serve", "export")
    assert usage.returncode == 0 and all(c in usage.stdout for c in commands)


#: What `fer-yolo --help` must not wait for: only the command handlers import these.
HEAVY = ("torch", "cv2", "ultralytics", "supervision")
#: Parses --version, a subcommand's --help and a bad flag, then prints which HEAVY modules are loaded, before
#: and after importing emotion.preprocess (which needs torch and OpenCV: the check can see them).
PARSE_THEN_LIST_HEAVY = f"""
import sys
from fer_yolo.cli import main
for argv in (["--version"], ["predict", "--help"], ["predict", "a.jpg", "--no-such-flag"]):
    try:
        main(argv)
    except SystemExit as e:
        print("check: exit", e.code)
heavy = {HEAVY!r}
print("check: loaded", *[m for m in heavy if m in sys.modules])
import fer_yolo.emotion.preprocess
print("check: loaded", *[m for m in heavy if m in sys.modules])
"""


def test_parsing_arguments_imports_no_heavy_library():
    env = os.environ | {"PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", PARSE_THEN_LIST_HEAVY], capture_output=True, text=True, env=env, timeout=120
    )
    lines = [
        line.removeprefix("check: ") for line in result.stdout.splitlines() if line.startswith("check: ")
    ]
    assert lines[:3] == ["exit 0", "exit 0", "exit 2"], result.stderr  # each answered by argparse alone
    assert "unrecognized arguments: --no-such-flag" in result.stderr and "Traceback" not in result.stderr
    assert lines[3] == "loaded"  # none of HEAVY
    assert {"torch", "cv2"} <= set(lines[4].split()[1:])


@pytest.mark.slow
def test_serve_answers_and_ctrl_c_stops_it_while_a_live_viewer_is_connected(media: Path):
    if not default_weights("detector").is_file() or not default_weights("emotion").is_file():
        pytest.fail("shipped weights missing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    video = media / "sihanwang_video/test.mp4"
    argv = ["serve", "--port", str(port), "--device", "cpu", "--source", str(video), "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "fer_yolo.cli", *argv], stderr=subprocess.PIPE, text=True)
    try:
        deadline, info = time.time() + 120, None
        while info is None and time.time() < deadline and proc.poll() is None:
            try:
                info = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert info is not None and b'"live":true' in info, proc.stderr.read() if proc.poll() else ""
        viewer = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/live.mjpg", timeout=30)
        assert viewer.read(4096).startswith(b"--frame")  # an open MJPEG stream, as a browser tab holds
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) in (0, 130)  # stops although the viewer never disconnects
        viewer.close()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize(
    ("argv", "source", "project"),
    [
        (["predict", "a.jpg"], ["a.jpg"], "runs/predict"),
        (["predict", "a.jpg", "b.jpg", "--source", "c"], ["c", "a.jpg", "b.jpg"], "runs/predict"),  # *.jpg
        (["stream", "--source", "0", "--threads", "2"], ["0"], "runs/stream"),
        (["predict", "a.jpg", "--config", "my.yaml"], ["a.jpg"], "/my/runs"),  # the config's parent folder
        (["stream", "--config", "my.yaml", "--project", "p"], [0], "p"),  # a flag beats the config
        (
            ["predict", "a.jpg", "--project", "runs/stream"],
            ["a.jpg"],
            "runs/stream",
        ),  # the default's value, named
    ],
)
def test_stream_and_predict_settings_reach_the_runner(argv, source, project, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("my.yaml").write_text("stream:\n  project: /my/runs\n  source: 0\n")  # YAML reads 0 as a number
    seen = {}

    def run(pipeline, stream, quiet):
        seen.update(stream)
        done = {"source": stream["source"], "frames": 1, "faces": 0, "faces_tracks": 0, "fps": 1.0}
        return SimpleNamespace(sources=[done], skipped=[], run_dir="out", interrupted=False)

    record = staticmethod(lambda cfg: seen.update(pipe=cfg))  # the pipeline section as the CLI made it
    monkeypatch.setattr(pipeline_module.Pipeline, "from_config", record)
    monkeypatch.setattr(runner_module, "run", run)
    assert main(argv) == 0
    assert (seen["source"], seen["project"]) == (source, project)
    assert seen["pipe"]["threads"] == (2 if "--threads" in argv else 0)
