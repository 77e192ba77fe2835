"""Finished units -> each source's outputs and the run's tables.

Per source, as `fer-yolo predict` writes them: <stem>.jsonl and <stem>.csv (timeline), <stem>_summary.json
and, where faces were seen, <stem>_emotions.png. Segments are joined in time order; they keep the whole
file's frame numbers and times, and each segment's track ids move past the ones before, so no two faces
share an id by chance.
For the run: faces.parquet and faces.csv (every face of every source, FACE_COLUMNS) and sources.csv
(SOURCE_COLUMNS). Everything streams line by line and is written under temporary names.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from pathlib import Path

from fer_yolo.batch.manifest import Manifest, unit_dir
from fer_yolo.batch.units import FACES_TABLE, SOURCES_TABLE, Unit
from fer_yolo.batch.worker import UNIT_STEM
from fer_yolo.config import default_of
from fer_yolo.faces import CSV_COLUMNS, FaceRecord, csv_rows
from fer_yolo.sinks import RunSummary
from fer_yolo.utils.io import atomic_path

#: faces.parquet / faces.csv: the source (video or image folder), then a timeline CSV's columns (the file the
#: frame came from, the face).
FACE_COLUMNS = ["source", *CSV_COLUMNS]
#: sources.csv: one row per source; skipped: its unreadable images (listed in report.json), incomplete: a
#: video cut short of the frame count in its header.
SOURCE_COLUMNS = [
    "source",
    "stem",
    "kind",
    "status",
    "units",
    "units_ok",
    "units_failed",
    "frames",
    "faces",
    "tracks",
    "seconds",
    "skipped",
    "incomplete",
    "error",
]
_FACE_ROWS_PER_BATCH = 20_000  # Parquet row group size: bounded memory whatever the archive's length


class FacesTable:
    """faces.parquet and faces.csv, written as rows arrive (context manager).

    Args:
        parquet: The Parquet file (pyarrow).
        csv_path: The CSV file.
    """

    def __init__(self, parquet: Path, csv_path: Path) -> None:
        self.parquet, self.csv_path = parquet, csv_path
        self.rows = 0

    def __enter__(self) -> FacesTable:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        types = {"source": pa.string(), "file": pa.string(), "emotion": pa.string()}
        types |= {"frame": pa.int64(), "track_id": pa.int64()}
        self._schema = pa.schema([(c, types.get(c, pa.float64())) for c in FACE_COLUMNS])
        self._stack = contextlib.ExitStack()
        self._writer = pq.ParquetWriter(self._stack.enter_context(atomic_path(self.parquet)), self._schema)
        self._stack.callback(self._writer.close)  # closed before its temporary file is renamed
        self._csv = csv.DictWriter(_open(self._stack, self.csv_path), fieldnames=FACE_COLUMNS)
        self._csv.writeheader()
        self._pending: list[dict] = []
        return self

    def add(self, source: str, file: str, rows: list[dict]) -> None:
        """Append one frame's face rows (timeline rows, see faces.FaceRecord)."""
        self._pending.extend({"source": source} | row for row in csv_rows(file, rows))
        if len(self._pending) >= _FACE_ROWS_PER_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(self._pa.Table.from_pylist(self._pending, self._schema))
            self._csv.writerows(self._pending)
            self.rows += len(self._pending)
            self._pending = []

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self._flush()
        self._stack.__exit__(exc_type, *exc)


def _open(stack: contextlib.ExitStack, path: Path):
    """A text file written under a temporary name, renamed to `path` when `stack` closes."""
    return stack.enter_context(open(stack.enter_context(atomic_path(path)), "w", newline=""))


def _frames(path: Path) -> Iterator[dict]:
    with open(path) as f:
        for line in f:
            yield json.loads(line)


def merge_source(
    out_dir: Path, units: list[Unit], fps: float | None, faces: FacesTable, save_json: bool, save_csv: bool
) -> RunSummary:
    """Join a source's finished units (in time order) into its outputs; their faces go to `faces` too.

    Args:
        out_dir: The run's output folder (units under out_dir/units).
        units: The source's finished units, in time order.
        fps: The source's frame rate after vid_stride (None: images).
        faces: The run's faces table.
        save_json: Write <stem>.jsonl.
        save_csv: Write <stem>.csv.

    Returns:
        The source's summary (also written as <stem>_summary.json, and its chart).
    """
    stem = units[0].stem
    summary = RunSummary(fps)
    with contextlib.ExitStack() as stack:
        jsonl = _open(stack, out_dir / f"{stem}.jsonl") if save_json else None
        timeline = None
        if save_csv:
            timeline = csv.DictWriter(_open(stack, out_dir / f"{stem}.csv"), fieldnames=CSV_COLUMNS)
            timeline.writeheader()
        next_id = 0  # segments restart their tracker: ids of later segments start after the earlier ones
        for unit in units:
            offset, top = next_id, next_id - 1
            for record in _frames(unit_dir(out_dir, unit.id) / f"{UNIT_STEM}.jsonl"):
                for row in record["faces"]:
                    if row["track_id"] is not None and row["track_id"] >= 0:
                        row["track_id"] += offset
                        top = max(top, row["track_id"])
                if jsonl is not None:
                    jsonl.write(json.dumps(record) + "\n")
                if timeline is not None:
                    timeline.writerows(csv_rows(record["source"], record["faces"]))
                faces.add(unit.source, record["source"], record["faces"])
                summary.add(record["t_s"], [FaceRecord.from_row(row) for row in record["faces"]])
            next_id = top + 1
    summary.write(out_dir / f"{stem}_summary.json", out_dir / f"{stem}_emotions.png")
    return summary


def merge_run(
    out_dir: Path, manifest: Manifest, save_json: bool | None = None, save_csv: bool | None = None
) -> tuple[list[dict], list[dict]]:
    """Write every source's outputs from its finished units (each source's JSON Lines and CSV timelines as
    `save_json` and `save_csv` say; None: `stream.save_json`, `stream.save_csv`), then faces.parquet,
    faces.csv and sources.csv.

    Returns:
        The rows of sources.csv (SOURCE_COLUMNS), and the unreadable images the finished units skipped
        ({"source", "file", "reason"} each).
    """
    save_json, save_csv = default_of(save_json, "stream.save_json"), default_of(save_csv, "stream.save_csv")
    by_source: dict[str, list[Unit]] = {}
    for unit in manifest.units.values():
        by_source.setdefault(unit.source, []).append(unit)
    rows, skipped = [], []
    tables = out_dir / f"{FACES_TABLE}.parquet", out_dir / f"{FACES_TABLE}.csv"
    with FacesTable(*tables) as faces:
        for source, units in by_source.items():
            records = [manifest.records[u.id] for u in units]
            done = [u for u, r in zip(units, records) if r["status"] == "ok"]
            failed = [r for r in records if r["status"] == "failed"]
            row = {
                "source": source,
                "stem": units[0].stem,
                "kind": units[0].kind,
                "status": "failed" if not done else "ok" if len(done) == len(units) else "partial",
                "units": len(units),
                "units_ok": len(done),
                "units_failed": len(failed),
                "frames": sum(r["frames"] for r in records),
                "seconds": round(sum(r["seconds"] for r in records), 2),
                "error": failed[0]["error"] if failed else None,
            }
            if done:
                reports = [json.loads((unit_dir(out_dir, u.id) / "unit.json").read_text()) for u in done]
                summary = merge_source(out_dir, done, reports[0]["fps"], faces, save_json, save_csv)
                lost = [(f, r) for rec in reports for f, r in rec["report"].get("skipped", [])]
                cut = [rec["report"]["incomplete"] for rec in reports if "incomplete" in rec["report"]]
                skipped += [{"source": source, "file": f, "reason": r} for f, r in lost]
                row |= {
                    "faces": summary.faces,
                    "tracks": len(summary.tracks),
                    "skipped": len(lost),
                    "incomplete": "; ".join(cut) or None,
                }
            rows.append(row)
    with atomic_path(out_dir / f"{SOURCES_TABLE}.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SOURCE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows, skipped
