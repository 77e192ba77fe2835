"""The web API on real photos and videos: results per face, bad uploads, jobs, live MJPEG."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from fer_yolo.config import load_config
from fer_yolo.pipeline import Pipeline
from fer_yolo.web.app import create_app
from tests.helpers.drawing import assert_boxes_drawn


@pytest.fixture(scope="module")
def cfg(face_weights: Path, emotion_weights: Path, media: Path) -> dict:
    over = {
        "pipeline": {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights)},
        "serve": {
            "max_image_mb": 5.0,
            "max_video_mb": 30.0,
            "source": str(media / "sihanwang_video/test.mp4"),
        },
    }
    return load_config(overrides=over)


@pytest.fixture(scope="module")
def client(cfg: dict):
    with TestClient(create_app(cfg, Pipeline.from_config(cfg["pipeline"]))) as c:
        yield c


def post_image(client: TestClient, path: Path | None = None, data: bytes | None = None, name="photo.jpg"):
    data = path.read_bytes() if path is not None else data
    return client.post("/api/image", files={"file": (name, data, "image/jpeg")})


def test_page_and_schema_are_served(client: TestClient, face_weights: Path, emotion_weights: Path):
    page = client.get("/")
    assert page.status_code == 200 and "fer-yolo" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/api/image", "/api/videos", "/api/videos/{job_id}"} <= set(schema["paths"])
    info = client.get("/api/info").json()
    names = {"detector": face_weights.name, "emotion": emotion_weights.name}  # the files, not their paths
    assert info["live"] is True and info["weights"] == names


def test_photo_gives_one_result_per_face_and_the_annotated_image(client: TestClient, media: Path):
    r = post_image(client, media / "facenet_pytorch/multiface.jpg")
    assert r.status_code == 200
    body = r.json()
    assert (body["width"], body["height"]) == (1200, 630) and len(body["faces"]) == 6
    for face in body["faces"]:
        assert sum(face["probs"].values()) == pytest.approx(1, abs=1e-3)
        assert face["emotion"] == max(face["probs"], key=face["probs"].get)
        x1, y1, x2, y2 = face["box_xyxy"]
        assert 0 <= x1 < x2 <= 1200 and 0 <= y1 < y2 <= 630
    jpeg = base64.b64decode(body["annotated_jpeg"].split(",", 1)[1])
    annotated = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imread(str(media / "facenet_pytorch/multiface.jpg"))
    assert_boxes_drawn(annotated, original, [face["box_xyxy"] for face in body["faces"]])


def test_concurrent_uploads_do_not_mix_results(client: TestClient, media: Path):
    photos = [media / "facenet_pytorch/multiface.jpg", media / "face_recognition/obama.jpg"] * 3
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda p: len(post_image(client, p).json()["faces"]), photos))
    assert counts == [6, 1] * 3


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"GIF89a not really an image", 415, "not a readable image"),
        (b"\xff\xd8" + bytes(6_000_000), 413, "5 MB limit"),
    ],
)
def test_bad_photos_get_clear_messages(client: TestClient, data: bytes, status: int, message: str):
    r = post_image(client, data=data)
    assert r.status_code == status and message in r.json()["error"]


def test_every_refusal_is_json_with_an_error(client: TestClient):
    def chunked():  # no Content-Length: the limit is found while the body arrives
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n\xff\xd8'
        for _ in range(12):
            yield bytes(500_000)
        yield b"\r\n--B--\r\n"

    r = client.post(
        "/api/image", content=chunked(), headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert r.status_code == 413 and "5 MB limit" in r.json()["error"]
    r = client.post("/api/image", data={"photo": "x"})  # no file field
    assert r.status_code == 422 and "file" in r.json()["error"]
    r = client.get("/api/nothing")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}


def test_a_file_that_is_not_a_video_is_refused(client: TestClient, media: Path):
    r = client.post(
        "/api/videos", files={"file": ("clip.mp4", (media / "face_recognition/obama.jpg").read_bytes())}
    )
    assert r.status_code == 415 and "not a video" in r.json()["error"]
    # unknown job ids and `..` in paths: tests/reliability/test_request_paths.py


def test_a_browser_recording_without_a_length_is_counted_before_it_is_accepted(tmp_path: Path):
    import av

    from fer_yolo.web.uploads import UploadError, check_video

    path = tmp_path / "recording.webm"
    with av.open(str(path), "w", format="webm", options={"live": "1"}) as out:  # as MediaRecorder writes
        stream = out.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) <= 0  # no length in its header
    with pytest.raises(UploadError, match="has 20 frames; the limit is 10") as refused:
        check_video(path, 30.0, 10)
    assert refused.value.status == 413
    assert check_video(path, 30.0, 100) == (20, 10.0)


@pytest.mark.slow
def test_video_job_runs_in_the_background_and_offers_its_files(client: TestClient, media: Path):
    clip = media / "sihanwang_video/test.mp4"  # 132 frames
    r = client.post("/api/videos", files={"file": ("any name.bin", clip.read_bytes(), "video/mp4")})
    assert r.status_code == 202
    url = r.json()["status_url"]
    deadline = time.time() + 300
    while (job := client.get(url).json())["status"] not in ("done", "error") and time.time() < deadline:
        assert job["total"] == 132
        time.sleep(0.5)
    assert job["status"] == "done", job
    video = client.get(job["files"]["video.webm"])
    assert video.status_code == 200 and video.content[:4] == b"\x1a\x45\xdf\xa3"  # WebM: plays in browsers
    csv_rows = client.get(job["files"]["timeline.csv"]).text.splitlines()
    assert csv_rows[0].startswith("file,frame,t_s,track_id") and len(csv_rows) > 100
    files = {row.split(",")[0] for row in csv_rows[1:]}
    assert files == {"any_name.bin"}  # the upload's own name (made safe), not where the server stored it
    assert client.get(job["files"]["emotions.png"]).content[:4] == b"\x89PNG"


def test_live_source_streams_annotated_jpegs_and_stats(client: TestClient):
    with client.stream("GET", "/api/live.mjpg") as r:
        assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
        head = b""
        for chunk in r.iter_bytes():
            head += chunk
            if head.count(b"\xff\xd9") >= 2:  # two whole JPEGs
                break
    assert head.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8")
    stats = client.get("/api/live/stats").json()
    assert stats["running"] and stats["error"] is None and set(stats["counts"]) >= {"happy", "neutral"}
    assert sum(map(sum, stats["counts"].values())) > 0  # faces were seen and classified
