"""What a batch run has done: finished unit folders and OUT/manifest.json.

A unit is finished when its folder OUT/units/<id>/ exists: the driver writes it under a temporary name and
renames it in one step, its unit.json included, so a crash or Ctrl-C leaves a unit complete or absent.
manifest.json lists every unit (status, frames, seconds, attempts, error) and is rewritten atomically from
those folders and from this run's failures, so it never disagrees with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from fer_yolo.batch.units import Unit
from fer_yolo.errors import ConfigError
from fer_yolo.utils.io import remove_temporaries, write_json

#: Unit statuses: pending (not done yet), running (on a worker), ok (its folder is written), failed.
STATUSES = ("pending", "running", "ok", "failed")
#: Written last into each unit folder: the unit, the report of its run and where it ran.
UNIT_FILE = "unit.json"


def unit_dir(out_dir: Path, unit_id: str) -> Path:
    """OUT/units/<id>: a finished unit's outputs."""
    return out_dir / "units" / unit_id


def commit_unit(out_dir: Path, unit: Unit, files: dict[str, bytes], record: dict) -> Path:
    """Write a finished unit's files and its record (unit.json) into OUT/units/<id>/ in one step.

    Args:
        out_dir: The run's output folder.
        unit: The unit.
        files: File name -> contents (what process_source wrote for it).
        record: Its manifest fields (frames, seconds, attempts, worker, report...).

    Returns:
        The unit folder.
    """
    final = unit_dir(out_dir, unit.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{unit.id}.", suffix=".tmp", dir=final.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / UNIT_FILE).write_text(json.dumps(unit.to_dict() | record, indent=2) + "\n")
        if final.exists():  # an earlier copy no manifest counted (e.g. written just before a crash)
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def finished_record(out_dir: Path, unit_id: str) -> dict | None:
    """A finished unit's unit.json, or None when it is not finished."""
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads((unit_dir(out_dir, unit_id) / UNIT_FILE).read_text())
    return None


class Manifest:
    """Every unit of the run with its status; saved as OUT/manifest.json.

    Args:
        path: The manifest file.
        settings: What the results depend on; a rerun with other settings in the same folder is refused.
        units: The planned units, in order.

    Example:
        >>> manifest = Manifest.open(Path("out"), {"pipeline": {}}, units)  # doctest: +SKIP
        >>> manifest.update(units[0].id, status="failed", error="cannot open video a.mp4")  # doctest: +SKIP
        >>> manifest.save()  # doctest: +SKIP
    """

    def __init__(self, path: Path, settings: dict, units: list[Unit]) -> None:
        self.path, self.settings = path, settings
        self.units = {u.id: u for u in units}
        self.records = {
            u.id: {"status": "pending", "frames": 0, "seconds": 0.0, "attempts": 0, "error": None}
            for u in units
        }
        self._saved = 0.0

    @classmethod
    def open(cls, out_dir: Path, settings: dict, units: list[Unit]) -> Manifest:
        """The manifest of `out_dir` for `units`: finished units (their folders) are ok, the others pending.

        Raises:
            ConfigError: `out_dir` holds a run made with other settings.
        """
        path = out_dir / "manifest.json"
        with contextlib.suppress(FileNotFoundError):
            previous = json.loads(path.read_text()).get("settings")
            if previous != settings:
                changed = sorted(k for k in settings | previous if settings.get(k) != previous.get(k))
                raise ConfigError(
                    f"{out_dir} holds a batch run made with other settings ({', '.join(changed)})",
                    "rerun with the same settings to resume it, or pass another -o",
                )
        remove_temporaries(out_dir)  # left by a driver killed while writing a unit or a table
        manifest = cls(path, settings, units)
        for unit in units:
            record = finished_record(out_dir, unit.id)
            if record is not None:
                manifest.update(
                    unit.id, **{k: record[k] for k in ("frames", "seconds", "attempts")}, status="ok"
                )
        return manifest

    def update(self, unit_id: str, **fields) -> None:
        """Change a unit's fields (status, frames, seconds, attempts, error)."""
        if fields.get("status", "pending") not in STATUSES:
            raise ValueError(f"unknown unit status {fields['status']!r}; known: {STATUSES}")
        self.records[unit_id].update(fields)

    def ids(self, status: str) -> list[str]:
        """The ids of the units with this status, in plan order."""
        return [i for i, r in self.records.items() if r["status"] == status]

    def counts(self) -> Counter:
        """Units per status."""
        return Counter(r["status"] for r in self.records.values())

    def save(self, every_s: float = 0.0) -> None:
        """Write manifest.json atomically (skipped when the last write is less than `every_s` old)."""
        if every_s and time.monotonic() - self._saved < every_s:
            return
        units = [self.units[i].to_dict() | r for i, r in self.records.items()]
        write_json(self.path, {"settings": self.settings, "counts": dict(self.counts()), "units": units})
        self._saved = time.monotonic()
