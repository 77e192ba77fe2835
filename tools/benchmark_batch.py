"""Archive throughput of `fer-yolo batch` with 1 and then 2 workers (1 CPU and 1 thread each), same run.

    python tools/benchmark_batch.py [--copies 2] [--segment-s 10] [--workers 1 2] [--out DIR]

The archive is every real clip of <data>/media, copied --copies times (so a run lasts long enough for the
start of Ray and of the workers to weigh little), with videos cut into --segment-s segments so the longest
clip does not leave a worker idle at the end. Each row is one whole `run_batch` on a fresh output folder:
wall seconds (Ray start, worker start, units, merge), frames per wall second, and frames per busy second of
each worker. The speed-up is against the first row. Run it on an idle machine (pause trainings): the load
average at the start is recorded beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from fer_yolo.batch import run_batch
from fer_yolo.config import load_config
from fer_yolo.utils.device import machine_name
from fer_yolo.utils.io import write_json, write_text
from fer_yolo.utils.paths import data_root


def make_archive(folder: Path, copies: int) -> list[Path]:
    """Copies of every clip of <data>/media, `copies` times each: distinct files, distinct units (links would
    not do: sources are resolved, so links to one clip are one source)."""
    clips = sorted((data_root() / "media").rglob("*.mp4"))
    files = []
    for k in range(copies):
        for clip in clips:
            file = folder / f"copy{k}" / clip.name
            file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip, file)
            files.append(file)
    return files


class ProcessCpu:
    """CPU seconds that the processes of this machine used while the block ran, by role: `workers` (the Ray
    actors running units), `driver` (this process), `ray` (Ray's own: raylet, GCS, agents, idle workers) and
    `other` (anything else, e.g. a training that was not paused). /proc is read every `every` seconds, so a
    process that starts and ends between two reads is missed (Ray's are long-lived)."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.seconds = every, Counter()
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _read(self, initial: bool = False) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
            self._first.setdefault(pid, cpu if initial else 0.0)
            self._last[pid] = (self._role(pid, command), cpu)

    @staticmethod
    def _role(pid: int, command: str) -> str:
        if pid == os.getpid():
            return "driver"
        if command.startswith("ray::UnitWorker"):
            return "workers"
        return "ray" if "ray" in command else "other"

    def _watch(self) -> None:
        while not self._stop.wait(self.every):
            self._read()

    def __enter__(self) -> ProcessCpu:
        self._read(initial=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()
        for pid, (role, cpu) in self._last.items():
            self.seconds[role] += cpu - self._first[pid]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=2, help="times each clip is in the archive")
    p.add_argument("--segment-s", type=float, default=10.0, help="segment length, seconds (0: whole clips)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts, one run each")
    p.add_argument("--out", default="docs/benchmark_batch", help="folder for results.json and results.md")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fer-yolo-benchmark-batch-"))
    try:
        archive = make_archive(work / "archive", args.copies)
        load = os.getloadavg()
        rows = []
        for workers in args.workers:
            cfg = load_config(
                overrides={
                    "batch": {"workers": workers, "cpus_per_worker": 1.0, "segment_s": args.segment_s},
                    "stream": {"save_csv": False},
                }
            )
            t0 = time.perf_counter()
            with ProcessCpu() as cpu:
                report = run_batch([str(a) for a in archive], work / f"out{workers}", cfg, quiet=True)
            wall = time.perf_counter() - t0
            if report.failed or report.interrupted:
                raise SystemExit(f"the {workers}-worker run did not finish every unit: {report.failed}")
            rows.append(
                {
                    "workers": workers,
                    "units": report.counts["ok"],
                    "frames": report.frames,
                    "wall_s": round(wall, 2),
                    "frames_per_s": round(report.frames / wall, 2),
                    "worker_frames_per_s": [w["fps"] for w in report.workers],
                    "cpu_s": {k: round(v, 1) for k, v in sorted(cpu.seconds.items())},
                }
            )
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        row["speedup"] = round(row["frames_per_s"] / rows[0]["frames_per_s"], 2)
    clips = len(archive) // args.copies
    source = f"{clips} clips of <data>/media x {args.copies} copies, segments of {args.segment_s:g} s"
    header = (
        f"Archive: {source}; {machine_name()}, 1 CPU and 1 thread per worker, local Ray; "
        f"load average at the start {load[0]:.2f} (1 min)."
    )
    table = [
        header,
        "",
        "| workers | units | frames | wall s | frames/s | speed-up | frames/s per worker (busy) "
        "| CPU s: workers / Ray / driver / other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_worker = ", ".join(f"{f:.1f}" if f else "-" for f in r["worker_frames_per_s"])
        cpu = " / ".join(f"{r['cpu_s'].get(k, 0.0):.0f}" for k in ("workers", "ray", "driver", "other"))
        table.append(
            f"| {r['workers']} | {r['units']} | {r['frames']} | {r['wall_s']} | {r['frames_per_s']} | "
            f"{r['speedup']}x | {per_worker} | {cpu} |"
        )
    print("\n".join(table))
    result = {"archive": source, "machine": machine_name(), "load_average": load, "rows": rows}
    write_json(Path(args.out) / "results.json", result)
    write_text(Path(args.out) / "results.md", "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
