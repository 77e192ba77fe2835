"""`fer-yolo batch`: plan the units, run them on Ray workers, merge what finished.

The driver hands out the longest units first, keeps one unit in flight per worker (backpressure: memory
holds at most one unit's results per worker), waits on whichever finishes first, writes it as a finished
unit folder, and sends that worker the next one. A worker whose process dies (killed, out of memory, node
lost) is replaced and its unit goes back to the front of the queue, up to `max_retries` more attempts; a
unit that cannot be read (a corrupt video) fails at once. Ctrl-C or SIGTERM stops the run with a manifest
that lists every finished unit; the same command resumes it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from fer_yolo.batch.cluster import ray_session
from fer_yolo.batch.manifest import Manifest, commit_unit
from fer_yolo.batch.merge import merge_run
from fer_yolo.batch.units import Unit, longest_first, plan_units
from fer_yolo.batch.worker import UnitWorker
from fer_yolo.config import shared_defaults
from fer_yolo.errors import ConfigError, FerYoloError
from fer_yolo.sources import collect_files
from fer_yolo.utils.io import write_json
from fer_yolo.utils.signals import deferred_interrupt, terminate_as_interrupt

LOGGER = logging.getLogger(__name__)
#: Settings of the `pipeline` section that change where it runs, not what it finds.
_PLACEMENT_KEYS = ("device", "half")
#: The `stream` settings a batch run applies; the others (a window, annotated videos, max_frames...) are
#: stream's and predict's.
STREAM_KEYS = ("vid_stride", "batch", "save_json", "save_csv")
_POLL_S = 0.5  # progress refresh: how long the driver waits for a unit before asking workers how far they are


@dataclass
class BatchReport:
    """What a batch run did (also written as OUT/report.json).

    Attributes:
        out_dir: The output folder.
        counts: Units per status (ok, failed, pending when interrupted).
        resumed: Units finished by an earlier run of the same command, skipped.
        retried: Units that needed more than one attempt.
        frames: Frames processed by this run.
        wall_s: Seconds this run took.
        workers: Per worker: host, units, frames, busy seconds and frames per busy second.
        failed: (unit, reason) of each failed unit.
        skipped: The unreadable images of finished units, each {"source", "file", "reason"}.
        sources: The per-source table (sources.csv rows).
        interrupted: Ctrl-C or SIGTERM stopped the run.
    """

    out_dir: Path
    counts: dict = field(default_factory=dict)
    resumed: int = 0
    retried: int = 0
    frames: int = 0
    wall_s: float = 0.0
    workers: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("out_dir", "failed")}
        return out | {
            "out_dir": str(self.out_dir),
            "failed": [{"unit": u, "reason": r} for u, r in self.failed],
        }


def result_settings(cfg: dict) -> dict:
    """The settings a batch run's results depend on: a rerun in the same folder must use the same."""
    pipeline = {k: v for k, v in cfg["pipeline"].items() if k not in _PLACEMENT_KEYS}
    return {"pipeline": pipeline, "vid_stride": cfg["stream"]["vid_stride"]}


def run_batch(specs: list[str], out_dir: str | Path, cfg: dict, quiet: bool = False) -> BatchReport:
    """Process every image folder and video that `specs` name on Ray workers; resume `out_dir` if it exists.

    Args:
        specs: Files, folders, globs and source lists (see sources.collect_files).
        out_dir: Output folder: per source <stem>.jsonl/.csv/_summary.json (and _emotions.png where faces
            were seen), faces.parquet, faces.csv, sources.csv, manifest.json, report.json and units/. Not a
            source folder itself (a rerun would read the outputs as inputs); a folder inside one is fine.
        cfg: The whole config (sections pipeline, stream: vid_stride, batch, save_json, save_csv; batch).
        quiet: No progress bar.

    Returns:
        The report. After Ctrl-C (`interrupted`) nothing is merged; the manifest lists what finished.

    Raises:
        SourceError: A command-line spec that matches nothing.
        ConfigError: `out_dir` is a source folder, or holds a run made with other settings.
        FerYoloError: Ray is missing, the cluster cannot be reached or cannot fit a worker, or workers
            cannot start (e.g. missing weights).

    Example:
        >>> report = run_batch(["archive/"], "runs/batch/archive", load_config())  # doctest: +SKIP
        >>> report.counts  # doctest: +SKIP
        {'ok': 41, 'failed': 1}
    """
    out_dir = Path(out_dir).expanduser()
    ignored = [
        k for k, v in cfg["stream"].items() if k not in STREAM_KEYS and v != shared_defaults()["stream"][k]
    ]
    if ignored:  # e.g. a config file shared with predict: say so rather than run otherwise than asked
        LOGGER.warning(
            "batch does not apply %s (of the stream section it applies %s)",
            ", ".join(f"stream.{k}={cfg['stream'][k]}" for k in ignored),
            ", ".join(STREAM_KEYS),
        )
    folders = [Path(s).expanduser().resolve() for s in specs if Path(s).expanduser().is_dir()]
    if out_dir.resolve() in folders:
        raise ConfigError(
            f"the output folder {out_dir} is a source folder: a rerun would read its outputs as inputs",
            "pass another --output, e.g. a folder inside it",
        )
    files = collect_files(specs, exclude=[out_dir])  # its outputs are not inputs when a rerun resumes
    units = plan_units(files, cfg["batch"]["segment_s"], cfg["stream"]["vid_stride"])
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.open(out_dir, result_settings(cfg), units)
    report = BatchReport(out_dir, resumed=len(manifest.ids("ok")))
    t0 = time.perf_counter()
    try:
        with terminate_as_interrupt():  # `kill` stops the run as Ctrl-C does
            if manifest.ids("pending"):
                _Driver(manifest, cfg, report, quiet).run()
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for unit_id in manifest.ids("running"):  # its worker was stopped with the run: redone next time
            manifest.update(unit_id, status="pending")
        manifest.save()
    report.wall_s = round(time.perf_counter() - t0, 2)
    report.counts = dict(manifest.counts())
    report.retried = sum(r["attempts"] > 1 for r in manifest.records.values())
    if not report.interrupted:
        stream = cfg["stream"]
        report.sources, report.skipped = merge_run(out_dir, manifest, stream["save_json"], stream["save_csv"])
    write_json(out_dir / "report.json", report.to_dict())
    return report


@dataclass
class _Slot:
    """One worker place: its actor (replaced when it dies), whether it has started, its unit in flight."""

    actor: object
    ready: object | None  # the ready() call until it answers
    unit: Unit | None = None
    task: object | None = None
    stats: dict = field(default_factory=lambda: {"host": None, "units": 0, "frames": 0, "busy_s": 0.0})


class _Driver:
    """Runs the manifest's pending units on Ray workers (see the module docstring)."""

    def __init__(self, manifest: Manifest, cfg: dict, report: BatchReport, quiet: bool) -> None:
        self.manifest, self.cfg, self.report, self.quiet = manifest, cfg, report, quiet
        self.settings = cfg["batch"]
        self.todo = deque(u.id for u in longest_first([manifest.units[i] for i in manifest.ids("pending")]))
        self.slots: list[_Slot] = []

    def run(self) -> None:
        b = self.settings
        local_cpus = math.ceil(b["workers"] * b["cpus_per_worker"]) if b["workers"] else None
        with ray_session(b["address"], local_cpus) as ray:
            self.ray = ray
            workers = self._worker_count()
            self.actor_class = ray.remote(
                num_cpus=b["cpus_per_worker"],
                num_gpus=b["gpus_per_worker"],
                max_restarts=0,  # the driver replaces dead workers itself and retries their unit
                concurrency_groups={"progress": 1},  # progress() answers while process() runs
            )(UnitWorker)
            self.slots = [self._spawn() for _ in range(min(workers, len(self.todo)))]
            total = len(self.manifest.records)
            bar = tqdm(total=total, initial=self.report.resumed, unit="unit", disable=self.quiet or None)
            self.bar, self.t0 = bar, time.perf_counter()
            try:
                self._loop()
                self._show_progress()  # the last units' frames
            finally:  # also after Ctrl-C: the report says what each worker did
                bar.close()
                self.report.workers = [s.stats | _rate(s.stats) for s in self.slots]

    def _worker_count(self) -> int:
        """--workers, or as many as the cluster's CPUs (and GPUs) fit; refuses a cluster that fits none."""
        b = self.settings
        resources = self.ray.cluster_resources()
        fits = math.floor(resources.get("CPU", 0) / b["cpus_per_worker"])
        if b["gpus_per_worker"]:
            fits = min(fits, math.floor(resources.get("GPU", 0) / b["gpus_per_worker"]))
        if fits < 1:
            raise FerYoloError(
                f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs) "
                f"cannot fit one worker ({b['cpus_per_worker']:g} CPUs, {b['gpus_per_worker']:g} GPUs)",
                "lower --cpus-per-worker / --gpus-per-worker or add nodes",
            )
        return b["workers"] or int(fits)

    def _spawn(self) -> _Slot:
        threads = max(1, round(self.settings["cpus_per_worker"]))
        actor = self.actor_class.remote(self.cfg["pipeline"], self.cfg["stream"], threads)
        return _Slot(actor, actor.ready.remote())

    def _loop(self) -> None:
        last_poll = 0.0
        while self.todo or any(s.unit for s in self.slots):
            for slot in self.slots:
                if slot.ready is None and slot.unit is None and self.todo:
                    self._submit(slot, self.manifest.units[self.todo.popleft()])
            waiting = {s.ready if s.ready is not None else s.task: s for s in self.slots}
            waiting.pop(None, None)  # started and idle: nothing left to give it
            done, _ = self.ray.wait(list(waiting), num_returns=1, timeout=_POLL_S)
            for ref in done:
                slot = waiting[ref]
                if ref is slot.ready:
                    self._started(slot)
                else:
                    self._finished(slot)
            if time.monotonic() - last_poll >= _POLL_S:
                self._show_progress()
                last_poll = time.monotonic()
            self.manifest.save(every_s=5.0)

    def _submit(self, slot: _Slot, unit: Unit) -> None:
        attempts = self.manifest.records[unit.id]["attempts"] + 1
        self.manifest.update(unit.id, status="running", attempts=attempts, error=None)
        slot.unit, slot.task = unit, slot.actor.process.remote(unit)

    def _started(self, slot: _Slot) -> None:
        try:
            slot.stats["host"] = self.ray.get(slot.ready)["host"]
        except self.ray.exceptions.RayActorError as e:  # the pipeline could not be built (weights, device)
            raise FerYoloError(
                f"a batch worker could not start: {_reason(e)}", "check the pipeline settings"
            ) from e
        slot.ready = None

    def _finished(self, slot: _Slot) -> None:
        unit, ref = slot.unit, slot.task
        slot.unit = slot.task = None
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as e:  # an unexpected error raised in the worker
            self._retry(unit, _reason(e))
            return
        except self.ray.exceptions.RayError as e:  # its process died, or its node (the result lost with it)
            self.ray.kill(slot.actor)
            new = self._spawn()  # a new worker takes the place
            slot.actor, slot.ready = new.actor, new.ready
            self._retry(unit, f"worker died: {_reason(e)}")
            return
        record = self.manifest.records[unit.id]
        if result["status"] == "failed":
            LOGGER.warning("failed %s: %s", _name(unit), result["error"])
            self.manifest.update(unit.id, status="failed", error=result["error"])
            self.report.failed.append((_name(unit), result["error"]))
        else:
            stats = {k: result[k] for k in ("frames", "seconds", "fps")} | {"attempts": record["attempts"]}
            with deferred_interrupt():  # Ctrl-C lands once the folder and its manifest entry agree
                commit_unit(self.report.out_dir, unit, result["files"], stats | {"report": result["report"]})
                self.manifest.update(unit.id, status="ok", frames=result["frames"], seconds=result["seconds"])
            self.report.frames += result["frames"]
            slot.stats["units"] += 1
            slot.stats["frames"] += result["frames"]
            slot.stats["busy_s"] += result["seconds"]
        self.bar.update(1)

    def _retry(self, unit: Unit, reason: str) -> None:
        attempts = self.manifest.records[unit.id]["attempts"]
        if attempts <= self.settings["max_retries"]:
            LOGGER.warning("retrying %s (attempt %d failed: %s)", _name(unit), attempts, reason)
            self.manifest.update(unit.id, status="pending", error=reason)
            self.todo.appendleft(unit.id)
            return
        error = f"{reason} (gave up after {attempts} attempts)"
        self.manifest.update(unit.id, status="failed", error=error)
        self.report.failed.append((_name(unit), error))
        self.bar.update(1)

    def _show_progress(self) -> None:
        """Frames done (finished units and the ones in flight) and frames/s on the bar."""
        busy = [s for s in self.slots if s.unit is not None and s.ready is None]
        calls = {s.actor.progress.options(concurrency_group="progress").remote(): s for s in busy}
        done, _ = self.ray.wait(list(calls), num_returns=len(calls), timeout=_POLL_S) if calls else ([], [])
        in_flight = 0
        for ref in done:
            try:
                unit_id, frames = self.ray.get(ref)
            except self.ray.exceptions.RayError:  # a worker that just died: its task says so
                continue
            in_flight += frames if calls[ref].unit is not None and unit_id == calls[ref].unit.id else 0
        frames = self.report.frames + in_flight
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix(frames=frames, fps=f"{frames / elapsed:.1f}", refresh=False)
        self.bar.refresh()


def _rate(stats: dict) -> dict:
    return {"fps": round(stats["frames"] / stats["busy_s"], 2) if stats["busy_s"] else None}


def _name(unit: Unit) -> str:
    """The unit as people read it: its file, and its frame range for a segment."""
    if unit.kind == "video" and (unit.start_frame or unit.end_frame is not None):
        return (
            f"{unit.source} [frames {unit.start_frame}-{'end' if unit.end_frame is None else unit.end_frame}]"
        )
    return unit.source


def _reason(error: Exception) -> str:
    """The first line that says what went wrong, without Ray's framing."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
