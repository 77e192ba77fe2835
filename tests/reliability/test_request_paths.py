"""Names in request paths reach nothing but a job's listed files (the path-traversal probes of issue 29)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
from fastapi.testclient import TestClient

from fer_yolo.pipeline import Pipeline
from fer_yolo.web.app import create_app


def short_clip(media: Path, path: Path, frames: int = 12) -> bytes:
    """An MP4 of a real photo with faces, a few frames long."""
    photo = cv2.resize(cv2.imread(str(media / "face_recognition/two_people.jpg")), (320, 188))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 188))
    for _ in range(frames):
        writer.write(photo)
    writer.release()
    return path.read_bytes()


def test_job_ids_and_file_names_reach_only_a_jobs_listed_files(
    serve_config, serve_pipeline: Pipeline, media: Path, tmp_path: Path
):
    with TestClient(create_app(serve_config(), serve_pipeline)) as client:
        for job_id in ("0" * 32, "%2e%2e"):  # unknown, and `..`: both reach the handler, which refuses them
            r = client.get(f"/api/videos/{job_id}")
            assert r.status_code == 404 and r.json()["error"].startswith("no such video job")
        clip = short_clip(media, tmp_path / "clip.mp4")
        r = client.post("/api/videos", files={"file": ("clip.mp4", clip, "video/mp4")})
        assert r.status_code == 202
        url, deadline = r.json()["status_url"], time.time() + 120
        while (job := client.get(url).json())["status"] not in ("done", "error") and time.time() < deadline:
            time.sleep(0.2)
        assert job["status"] == "done", job
        for name in ("report.json", "upload", "%2e%2e"):  # beside the listed files, and `..`
            r = client.get(f"{url}/{name}")
            assert r.status_code == 404 and r.json()["error"].startswith("no file"), name
        summary = client.get(job["files"]["summary.json"])  # a listed file is served
        assert summary.status_code == 200 and summary.json()
