"""A rerun of `convert` on a folder that changed gives what a fresh conversion of it gives (issue 29)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_yolo.config import load_config
from fer_yolo.data.convert.engine import ConvertSettings, convert
from fer_yolo.data.convert.items import ratio_split
from fer_yolo.data.images import content_hash


def outputs(folder: Path) -> dict[str, str]:
    """A digest of every output file under crops/ and yolo/, by its path relative to the folder."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()[:12]
        for sub in ("crops", "yolo")
        for p in sorted((folder / sub).rglob("*"))
        if p.is_file()
    }


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / ".convert/manifest.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("split", ["keep", "re-split"])
def test_an_input_changed_in_place_is_converted_again(split: str, fer2013: Path, tmp_path: Path):
    src, out = tmp_path / "src", tmp_path / "out"
    for folder, prefix in (("train", "Training_"), ("test", "PublicTest_")):
        for emotion in ("happy", "sad"):
            (src / folder / emotion).mkdir(parents=True)
            for f in sorted((fer2013 / folder / emotion).glob(f"{prefix}*"))[:3]:
                shutil.copy(f, src / folder / emotion)
    settings = ConvertSettings(**load_config()["convert"] | {"workers": 0, "split": split})  # crops, yolo
    first = convert(src, out, settings, progress=False)
    changed = sorted((src / "train/happy").iterdir())[0]
    (old,) = [r for r in manifest(out) if Path(r["source"]).name == changed.name]
    # another face at the same path (same label); re-split: one whose content hash moves it to another split
    new_face = next(
        f
        for f in sorted((fer2013 / "train/sad").glob("Training_*"))[10:]
        if split == "keep"
        or ratio_split(content_hash(f.read_bytes()), tuple(settings.ratios), settings.seed) != old["split"]
    )
    changed.write_bytes(new_face.read_bytes())

    again = convert(src, out, settings, progress=False)
    fresh = convert(src, tmp_path / "fresh", settings, progress=False)
    assert outputs(out) == outputs(tmp_path / "fresh")  # probe: the old face stayed, counted as the new one
    (new,) = [r for r in manifest(out) if r["key"] == old["key"]]
    assert new["hash"] == content_hash(new_face.read_bytes()) != old["hash"]
    crop = cv2.imread(str(out / new["outputs"][0]), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(crop, cv2.imread(str(new_face), cv2.IMREAD_GRAYSCALE))  # 48 x 48 grey: as it is
    yolo_image = next(o for o in new["outputs"] if o.startswith("yolo/images/"))
    assert (out / yolo_image).read_bytes() == new_face.read_bytes()
    if split == "re-split":
        assert new["split"] != old["split"] and not (out / old["outputs"][0]).exists()
    for report in (first, again):
        assert report["converted"] == 12 and report["skipped"] == []
    assert again["crops"] == fresh["crops"] and again["yolo"] == fresh["yolo"]
    if split == "keep":  # PublicTest files are the val split
        assert again["crops"] == first["crops"] == {s: {"happy": 3, "sad": 3} for s in ("train", "val")}
    assert len(manifest(out)) == 12  # 11 kept, 1 redone
