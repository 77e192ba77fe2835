"""Batch bookkeeping: a unit folder appears whole or not at all, the manifest agrees with the folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_yolo.batch.manifest import Manifest, commit_unit, finished_record, unit_dir
from fer_yolo.batch.units import Unit
from fer_yolo.errors import ConfigError

UNITS = [Unit("a-1", "a.mp4", "a", "video", 0, 100), Unit("a-2", "a.mp4", "a", "video", 100, None)]
SETTINGS = {"pipeline": {"conf": 0.4}, "vid_stride": 1}


def test_commit_writes_the_unit_folder_in_one_step(tmp_path: Path):
    record = {"frames": 100, "seconds": 2.0, "attempts": 1}
    folder = commit_unit(tmp_path, UNITS[0], {"unit.jsonl": b"{}\n"}, record)
    assert folder == unit_dir(tmp_path, "a-1") and (folder / "unit.jsonl").read_bytes() == b"{}\n"
    assert finished_record(tmp_path, "a-1") == UNITS[0].to_dict() | record
    assert finished_record(tmp_path, "a-2") is None
    assert [p.name for p in (tmp_path / "units").iterdir()] == ["a-1"]  # no temporary folder left


def test_unwritable_file_leaves_no_unit(tmp_path: Path):
    with pytest.raises(OSError):
        commit_unit(tmp_path, UNITS[0], {"sub/unit.jsonl": b"x"}, {})  # a name that cannot be written
    assert finished_record(tmp_path, "a-1") is None and not list((tmp_path / "units").iterdir())


def test_reopened_manifest_counts_finished_folders_and_redoes_the_rest(tmp_path: Path):
    commit_unit(tmp_path, UNITS[1], {}, {"frames": 80, "seconds": 1.5, "attempts": 2})
    (tmp_path / "units" / ".a-1.x.tmp").mkdir()  # a unit being written when the driver was killed
    manifest = Manifest.open(tmp_path, SETTINGS, UNITS)
    assert manifest.ids("ok") == ["a-2"] and manifest.ids("pending") == ["a-1"]
    assert manifest.records["a-2"] == {
        "status": "ok",
        "frames": 80,
        "seconds": 1.5,
        "attempts": 2,
        "error": None,
    }
    assert not (tmp_path / "units" / ".a-1.x.tmp").exists()
    manifest.update("a-1", status="failed", error="cannot open video a.mp4")
    manifest.save()
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["counts"] == {"failed": 1, "ok": 1} and saved["settings"] == SETTINGS
    assert [(u["id"], u["status"], u["end_frame"]) for u in saved["units"]] == [
        ("a-1", "failed", 100),
        ("a-2", "ok", None),
    ]
    with pytest.raises(ValueError, match="unknown unit status 'done'"):
        manifest.update("a-1", status="done")


def test_other_settings_in_the_same_folder_are_refused(tmp_path: Path):
    Manifest.open(tmp_path, SETTINGS, UNITS).save()
    other = {"pipeline": {"conf": 0.6}, "vid_stride": 1}
    with pytest.raises(ConfigError, match=r"holds a batch run made with other settings \(pipeline\)"):
        Manifest.open(tmp_path, other, UNITS)
