"""Inputs that are partly unusable are reported, never passed over in silence (probe 5 of issue 29)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fer_yolo.config import load_config
from fer_yolo.data.convert.engine import ConvertSettings, convert
from fer_yolo.pipeline import Pipeline
from fer_yolo.web.app import create_app


def test_a_folder_beside_the_splits_that_is_neither_is_reported(fer2013: Path, tmp_path: Path):
    src = tmp_path / "src"
    for split, prefix in (("train", "Training_"), ("test", "PublicTest_")):
        (src / split / "happy").mkdir(parents=True)
        for f in sorted((fer2013 / split / "happy").glob(f"{prefix}*"))[:3]:
            shutil.copy(f, src / split / "happy")
    (src / "extra/happy").mkdir(parents=True)  # neither a split nor an emotion
    stray = sorted((fer2013 / "train/happy").glob("Training_*"))[5]
    shutil.copy(stray, src / "extra/happy")
    settings = ConvertSettings(**load_config()["convert"] | {"kinds": ["crops"], "workers": 0})
    report = convert(src, tmp_path / "out", settings, progress=False)
    reasons = {Path(s["source"]).name: s["reason"] for s in report["skipped"]}
    assert "beside the split folders" in reasons[stray.name] and "'extra'" in reasons[stray.name]
    assert sum(sum(c.values()) for c in report["crops"].values()) == 6


@pytest.mark.slow
def test_a_truncated_video_upload_is_flagged_incomplete(serve_config, serve_pipeline: Pipeline, media: Path):
    clip = (media / "sihanwang_video/test.mp4").read_bytes()  # 132 frames; the first half decodes 60
    with TestClient(create_app(serve_config(), serve_pipeline)) as client:
        r = client.post("/api/videos", files={"file": ("half.mp4", clip[: len(clip) // 2], "video/mp4")})
        assert r.status_code == 202
        url, deadline = r.json()["status_url"], time.time() + 300
        while (job := client.get(url).json())["status"] not in ("done", "error") and time.time() < deadline:
            time.sleep(0.5)
    assert job["status"] == "done" and "decoded 60 of 132" in job["incomplete"]
