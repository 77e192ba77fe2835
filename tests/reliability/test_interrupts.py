"""Probes that held, kept as tests: a killed conversion resumes to the same result, and memory stays flat
over a long clip (issue 29)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_yolo.config import load_config
from fer_yolo.pipeline import Pipeline

CLI = [sys.executable, "-c", "from fer_yolo.cli import main; raise SystemExit(main())"]


def crops_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "crops").rglob("*.png"))}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_a_conversion_stopped_midway_resumes_to_the_same_outputs(signum, fer2013: Path, tmp_path: Path):
    src = tmp_path / "src"
    for emotion in ("happy", "sad", "fear"):
        (src / "train" / emotion).mkdir(parents=True)
        for f in sorted((fer2013 / "train" / emotion).glob("*.jpg"))[:400]:
            shutil.copy(f, src / "train" / emotion)
    args = ["convert", str(src), "--kind", "crops", "--workers", "0", "--augment", "2"]
    straight = subprocess.run([*CLI, *args, "-o", str(tmp_path / "straight")], capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "stopped"
    proc = subprocess.Popen([*CLI, *args, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / ".convert/manifest.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not manifest.is_file() or manifest.read_text().count("\n") < 100):
        time.sleep(0.05)
    proc.send_signal(signum)
    proc.wait(60)
    done = manifest.read_text().count("\n")
    assert 100 <= done < 1200, "stopped midway"
    again = subprocess.run([*CLI, *args, "-o", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    a, b = (json.loads((d / "report.json").read_text()) for d in (tmp_path / "straight", out))
    assert a["crops"] == b["crops"] and a["converted"] == b["converted"] == 1200
    assert crops_of(tmp_path / "straight") == crops_of(out)  # same files, same pixels
    assert not list(out.rglob("*.tmp*"))  # no half-written file left behind


@pytest.mark.slow
def test_memory_stays_flat_over_a_long_clip(face_weights: Path, emotion_weights: Path, media: Path):
    over = {"pipeline": {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights)}}
    pipeline = Pipeline.from_config(load_config(overrides=over)["pipeline"])
    cap = cv2.VideoCapture(str(media / "facenet_pytorch/video.mp4"))  # pedestrians: faces come and go
    frames = []
    while (ok := cap.read())[0]:
        frames.append(cv2.resize(ok[1], (1280, 720)))
    cap.release()

    def rss_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1]) / 1024

    samples = []
    for i in range(1500):  # 60 s of video at 25 fps: the clip forwards and back, tracks all the way
        k = i % (2 * len(frames))
        pipeline.process(frames[k if k < len(frames) else 2 * len(frames) - 1 - k], i / 25, track=True)
        if i in (300, 1499):
            samples.append(rss_mb())
    assert samples[1] - samples[0] < 40, samples  # no growth per frame or per track
    assert np.isfinite(samples).all()
