"""Hostile and heavy image uploads to `serve` (probe 3 of issue 29): pixel bombs are refused before decoding,
decoding is one image at a time, large photos are scaled to what the pipeline uses, and memory returns."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

import fer_yolo.web.uploads as uploads
from fer_yolo.config import load_config
from fer_yolo.pipeline import Pipeline
from fer_yolo.web.app import create_app


@pytest.fixture(scope="module")
def client(face_weights: Path, emotion_weights: Path):
    over = {"pipeline": {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights)}}
    cfg = load_config(overrides=over)
    with TestClient(create_app(cfg, Pipeline.from_config(cfg["pipeline"]))) as c:
        yield c


def post(client: TestClient, data: bytes):
    return client.post("/api/image", files={"file": ("x.png", data, "image/png")})


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no /proc/self/status")


def test_a_small_file_declaring_a_huge_image_is_refused_before_decoding(client: TestClient, monkeypatch):
    bomb = cv2.imencode(".png", np.zeros((8000, 8000), np.uint8))[1].tobytes()  # 64 MP in ~60 KB
    assert len(bomb) < 300_000
    decoded = []
    monkeypatch.setattr(uploads.cv2, "imdecode", lambda *a: decoded.append(1))
    r = post(client, bomb)
    assert r.status_code == 413 and "24 MP limit" in r.json()["error"] and not decoded


def test_large_photos_are_scaled_for_the_pipeline_and_boxes_come_back_in_their_pixels(
    client: TestClient, media: Path
):
    photo = cv2.imread(str(media / "facenet_pytorch/multiface.jpg"))  # 1200 x 630, 6 faces
    small = post(client, cv2.imencode(".png", photo)[1].tobytes()).json()
    big_image = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 4800 x 2520
    big = post(client, cv2.imencode(".jpg", big_image)[1].tobytes()).json()
    assert (big["width"], big["height"]) == (4800, 2520) and big["annotated_scale"] == pytest.approx(
        2048 / 4800
    )
    assert len(big["faces"]) == len(small["faces"]) == 6
    a = np.array(sorted(f["box_xyxy"] for f in small["faces"])) * 4
    b = np.array(sorted(f["box_xyxy"] for f in big["faces"]))
    assert np.abs(a - b).max() < 0.06 * (a[:, 2] - a[:, 0]).min() * 4  # same faces, the upload's pixels


def test_concurrent_uploads_decode_one_at_a_time(client: TestClient, media: Path, monkeypatch):
    live, peak, guard = [0], [0], threading.Lock()
    original = uploads.decode_image

    def tracked(*args, **kwargs):
        with guard:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        try:
            return original(*args, **kwargs)
        finally:
            with guard:
                live[0] -= 1

    monkeypatch.setattr(uploads, "decode_image", tracked)
    data = (media / "face_recognition/two_people.jpg").read_bytes()
    with ThreadPoolExecutor(4) as pool:
        codes = [r.status_code for r in pool.map(lambda _: post(client, data), range(4))]
    assert codes == [200] * 4 and peak[0] == 1


@pytest.mark.slow
def test_memory_returns_after_a_burst_of_large_uploads(client: TestClient, media: Path):
    photo = cv2.imread(str(media / "face_recognition/obama_and_biden.jpg"))  # 2000 x 1428
    large = cv2.imencode(".jpg", cv2.resize(photo, (5400, 3800)))[1].tobytes()  # 20.5 MP, under the cap
    post(client, large)  # warm: models, arenas
    before = rss_mb()
    with ThreadPoolExecutor(4) as pool:
        codes = [r.status_code for r in pool.map(lambda _: post(client, large), range(4))]
    assert codes == [200] * 4
    # one decoded 20 MP image is ~60 MB (PIL's check and OpenCV's copy ~120 MB): four at once would hold 4x
    assert rss_mb() - before < 200  # measured: +30 MB
