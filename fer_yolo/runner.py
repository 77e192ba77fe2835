"""`fer-yolo stream` / `predict`: run the pipeline over sources and write every output.

Per source, in the run folder: <stem>.mp4 (annotated video) or images/<name> (annotated images),
<stem>.jsonl and <stem>.csv (timeline), <stem>_summary.json and, where faces were seen, <stem>_emotions.png
(per-track dominant emotion and durations, emotions over time). Ctrl-C stops cleanly: every file written so
far is finalised and the report says the run was interrupted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from tqdm.auto import tqdm

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.data.images import encode_image
from fer_yolo.errors import SourceError, UnreadableSource
from fer_yolo.pipeline import Pipeline
from fer_yolo.sinks import RunSummary, TimelineSink, VideoSink
from fer_yolo.sources import FrameSource, ImageSource, open_sources
from fer_yolo.utils.io import increment_dir, write_bytes, write_json
from fer_yolo.utils.signals import deferred_interrupt, terminate_as_interrupt

LOGGER = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run did: its folder, per-source summaries, videos it could not open, whether Ctrl-C or an error
    ended it."""

    run_dir: Path
    weights: dict[str, str] = field(default_factory=dict)
    sources: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "run_dir": str(self.run_dir),
            "interrupted": self.interrupted,
            "error": self.error,
            "weights": self.weights,
            "sources": self.sources,
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
        }


def has_display() -> bool:
    """True where a window can be shown (an X11/Wayland display on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def process_source(
    pipeline: Pipeline,
    source: FrameSource,
    cfg: dict,
    run_dir: Path,
    stem: str,
    annotator: FaceAnnotator,
    quiet: bool = True,
    video_suffix: str = ".mp4",
    on_frame: Callable[[int, int | None], None] | None = None,
) -> dict:
    """Run the pipeline over one source and write its outputs into `run_dir`.

    Args:
        pipeline: The pipeline (its tracks restart).
        source: An opened source.
        cfg: The `stream` config section (save, save_json, save_csv, show, batch, max_frames).
        run_dir: Output folder.
        stem: Output file stem (unique within the run).
        annotator: Draws the annotated frames (its show_fps decides the FPS overlay).
        quiet: No progress bar.
        video_suffix: .mp4 (mp4v) or .webm (VP8, plays in browsers).
        on_frame: Called after each frame with (frames done, total or None).

    Returns:
        The source's report (frames, fps, tracks, outputs, drops).

    Raises:
        _Interrupted: Ctrl-C; carries the report of what was finalised.
        UnreadableSource: A file source yielded no frame (its outputs are removed).
    """
    info = source.info
    images = isinstance(source, ImageSource)
    files = {
        "jsonl": run_dir / f"{stem}.jsonl" if cfg["save_json"] else None,
        "csv": run_dir / f"{stem}.csv" if cfg["save_csv"] else None,
        "video": run_dir / f"{stem}{video_suffix}" if cfg["save"] and not images else None,
        "summary": run_dir / f"{stem}_summary.json",
        "chart": run_dir / f"{stem}_emotions.png",
    }
    timeline = TimelineSink(files["jsonl"], files["csv"])
    video = (
        VideoSink(files["video"], info.fps, info.resolution_wh)
        if files["video"]
        else contextlib.nullcontext()
    )
    image_names: set[str] = set()
    summary = RunSummary(info.fps)
    show = cfg["show"] and has_display()
    bar = tqdm(total=info.total_frames, desc=Path(info.name).name, unit="frame", disable=quiet or None)
    interrupted, stopped, t0, n = False, False, time.perf_counter(), 0
    try:
        with video as writer, timeline:  # a video that cannot be written leaves no timeline either
            try:
                drawing = annotator if cfg["save"] or show else None
                for result in pipeline.run(source, cfg["batch"], drawing):
                    frame, annotated, records = result.frame, result.annotated, result.records()
                    with deferred_interrupt():  # a frame lands in every output or in none
                        timeline.write(frame.index, frame.t_s, records, frame.name)
                        summary.add(frame.t_s, records)
                        if images and cfg["save"]:
                            out = run_dir / "images" / unique_name(Path(frame.name).name, image_names)
                            write_bytes(out, encode_image(annotated, out.suffix))
                        elif writer is not None:
                            # Live sources drop frames: repeat or skip so the video keeps real time.
                            repeats = round(frame.t_s * info.fps) + 1 - writer.frames if info.live else 1
                            for _ in range(max(repeats, 0)):
                                writer.write(annotated)
                        n += 1
                    if show:
                        cv2.imshow("fer-yolo", annotated)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            stopped = True
                            break
                    bar.update(1)
                    if on_frame is not None:
                        on_frame(n, info.total_frames)
                    if info.live:
                        bar.set_postfix(
                            fps=f"{result.fps or 0:.1f}",
                            faces=len(records),
                            dropped=getattr(source, "dropped", 0),
                        )
                    if cfg["max_frames"] and n >= cfg["max_frames"]:
                        stopped = True
                        break
            except KeyboardInterrupt:  # also one raised while a source handles an error (skips an image)
                interrupted = True
            finally:
                bar.close()
                if show:
                    cv2.destroyAllWindows()
    except KeyboardInterrupt as e:  # a second Ctrl-C while the outputs were finished: it lands after them
        if isinstance(e.__context__, Exception):  # an error was ending the run: it is what the run reports
            raise e.__context__ from None
        interrupted = True
    elapsed = time.perf_counter() - t0
    if n == 0 and not info.live and not interrupted:  # nothing decoded: leave no empty outputs behind
        for path in files.values():
            if path is not None:
                path.unlink(missing_ok=True)
        reason = "no image could be read" if images else "no frame could be decoded (truncated or corrupt?)"
        raise UnreadableSource(reason, "check the file: it opened but held nothing fer-yolo could decode")
    try:
        with deferred_interrupt():  # the summary and its chart are written whole, then Ctrl-C lands
            summary.write(files["summary"], files["chart"])
    except KeyboardInterrupt:
        interrupted = True
    report = {
        "source": info.name,
        "frames": n,
        "seconds": round(elapsed, 2),
        "fps": round(n / elapsed, 2) if elapsed else None,
        "faces": summary.faces,
        "faces_tracks": len(summary.tracks),
        "outputs": sorted(p.name for p in files.values() if p is not None and p.is_file()),
    }
    for key in ("dropped", "reconnects"):
        if hasattr(source, key):
            report[key] = getattr(source, key)
    expected = info.total_frames
    # A file that ends well short of the frame count in its header is cut off (the count may be off by a few).
    if not (images or info.live or stopped or interrupted) and expected and n < 0.98 * expected - 1:
        report["incomplete"] = f"decoded {n} of {expected} frames: the file may be truncated"
        LOGGER.warning("%s: %s", info.name, report["incomplete"])
    if images:
        report["skipped"] = source.skipped
        report["images"] = n  # images read and processed, saved or not
    if interrupted:
        raise _Interrupted(report)
    return report


def unique_name(name: str, used: set[str]) -> str:
    """`name`, or name_2, name_3... (before the suffix) if already in `used`, compared without case (the file
    systems of macOS and Windows ignore it: Clip.mp4 would overwrite clip.mp4's outputs); the result is added
    to it, case-folded."""
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, k = name, 1
    while candidate.casefold() in used:
        k += 1
        candidate = f"{stem}_{k}{suffix}"
    used.add(candidate.casefold())
    return candidate


class _Interrupted(Exception):
    def __init__(self, report: dict) -> None:
        self.report = report


def project_folder(cfg: dict, command: str = "stream") -> Path:
    """The folder a run's folder goes into: `cfg["project"]`, or runs/<command> where that is empty."""
    return Path(cfg["project"] or f"runs/{command}").expanduser()


def earlier_runs(project: Path) -> list[Path]:
    """The folders of `project` that hold a finished run: a report.json with a run report's keys (a folder of
    the user's with another report.json, e.g. a convert output, is not one; a renamed run still is)."""
    keys = set(RunReport(project, {}).to_dict())
    runs = []
    for folder in project.iterdir():
        try:
            report = json.loads((folder / "report.json").read_text())
        except (OSError, ValueError):  # no report (not a run, or one killed before it ended)
            continue
        if isinstance(report, dict) and keys <= report.keys():
            runs.append(folder)
    return runs


def run(pipeline: Pipeline, cfg: dict, quiet: bool = False) -> RunReport:
    """Run the pipeline over every source of `cfg["source"]`, writing the outputs `cfg` asks for.

    Args:
        pipeline: The pipeline (see Pipeline.from_config).
        cfg: The `stream` config section (keys and meaning: fer_yolo/cfg/default.yaml).
        quiet: No progress bars.

    Returns:
        The report (also written as report.json in the run folder).

    Raises:
        SourceError: The source does not exist or cannot be opened.
        Exception: Whatever else stops the run, once report.json records it (`error`).
    """
    if cfg["show"] and not has_display():
        LOGGER.warning("--show ignored: no display here (outputs are still written)")
    project = project_folder(cfg)
    run_dir = increment_dir(project, cfg["name"])
    report = RunReport(run_dir, pipeline.weights)
    annotator = FaceAnnotator.from_config(cfg)
    stems: set[str] = set()
    # earlier runs' outputs are not inputs (`fer-yolo predict .` run twice): the project folder, or where
    # it is the folder read (`--project .`), its run folders
    outputs = [project, run_dir, *earlier_runs(project)]
    sources = open_sources(
        cfg["source"], cfg["vid_stride"], cfg["reconnect"], report.skipped, exclude=outputs
    )
    try:
        with terminate_as_interrupt():  # `kill` finalises the outputs as Ctrl-C does
            for source in sources:
                with source:
                    base = "predictions" if isinstance(source, ImageSource) else source.info.stem
                    stem = unique_name(base, stems)  # two clip.mp4 in different folders: clip, clip_2
                    try:
                        result = process_source(pipeline, source, cfg, run_dir, stem, annotator, quiet)
                    except UnreadableSource as e:  # reported as skipped; the run goes on
                        if isinstance(source, ImageSource):  # each image says why
                            report.skipped.extend(source.skipped)
                        else:
                            LOGGER.warning("skipped %s: %s", source.info.name, e.message)
                            report.skipped.append((source.info.name, e.message))
                        continue
                    report.sources.append(result)
    except _Interrupted as e:
        report.sources.append(e.report)
        report.interrupted = True
    except KeyboardInterrupt:  # while opening a source
        report.interrupted = True
    except Exception as e:
        if isinstance(e, SourceError) and not any(run_dir.iterdir()):  # a wrong --source: no empty folder
            run_dir.rmdir()
            raise
        # The outputs hold every frame before the failing one (each is renamed complete); say why they end.
        report.error = f"{type(e).__name__}: {e}"
        write_json(run_dir / "report.json", report.to_dict())
        raise
    write_json(run_dir / "report.json", report.to_dict())
    return report
