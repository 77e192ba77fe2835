"""The web page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from fer_yolo.config import load_config
from fer_yolo.pipeline import Pipeline
from fer_yolo.web.app import create_app

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def server(face_weights: Path, emotion_weights: Path, media: Path):
    over = {
        "pipeline": {"detector_weights": str(face_weights), "emotion_weights": str(emotion_weights)},
        "serve": {"max_image_mb": 2.0},
    }
    cfg = load_config(overrides=over)
    app = create_app(cfg, Pipeline.from_config(cfg["pipeline"]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def upload(browser, server: str, path: Path) -> None:
    browser.get(server)
    browser.find_element("id", "photo-input").send_keys(str(path))


def test_photo_upload_shows_one_card_per_face(browser, server: str, media: Path, tmp_path: Path):
    upload(browser, server, media / "facenet_pytorch/multiface.jpg")
    # All cards are added in one script task once the image has loaded: seeing one means seeing all.
    cards = wait_for(lambda: browser.find_elements("css selector", ".face-card"))
    assert len(cards) == 6
    assert all(len(c.find_elements("css selector", ".prob")) == 7 for c in cards)
    assert "6 faces" in browser.find_element("id", "photo-caption").text
    assert browser.find_element("id", "message").is_displayed() is False
    browser.save_screenshot(str(tmp_path / "photo.png"))
    assert (tmp_path / "photo.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"just some text", "not a readable image"),
        (b"\xff\xd8" + bytes(2_500_000), "2 MB limit"),
    ],
)
def test_bad_uploads_show_their_message(browser, server: str, tmp_path: Path, content: bytes, message: str):
    bad = tmp_path / "upload.jpg"
    bad.write_bytes(content)
    upload(browser, server, bad)
    box = browser.find_element("id", "message")
    wait_for(lambda: box.is_displayed() and box.text)
    assert message in box.text and "Traceback" not in box.text
