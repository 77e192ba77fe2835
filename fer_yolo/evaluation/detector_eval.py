"""`fer-yolo eval detector`: WIDER FACE easy/medium/hard AP and images/s of several detectors in one run."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from fer_yolo.config import default_of, pipeline_default
from fer_yolo.detectors import FaceDetector, build_detector, parse_detector_spec
from fer_yolo.evaluation import widerface_ap as wap
from fer_yolo.evaluation.closeups import CloseupSet, score_closeups
from fer_yolo.evaluation.plots import plot_pr_curves
from fer_yolo.utils.device import set_threads
from fer_yolo.utils.io import write_json, write_text

LOGGER = logging.getLogger(__name__)


def evaluate_one(
    spec: str, detector: FaceDetector, gt: list, root: Path, threads: int | None, warmup: int
) -> dict:
    """Warm up, run and score one detector built from ``spec`` (``name[:key=value,...]``)."""
    name, kwargs = parse_detector_spec(spec)
    set_threads(threads)
    detector.detect(np.zeros((480, 640, 3), np.uint8))  # lazy setup (ultralytics resets threads here)
    set_threads(threads)
    t0 = time.perf_counter()
    preds, speed = wap.run_detector(detector, gt, root, warmup=warmup)
    LOGGER.info(
        "%s: %d images in %.1f s, %.2f images/s (detector only)",
        spec,
        len(gt),
        time.perf_counter() - t0,
        speed,
    )
    settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "defaults"
    return {
        "detector": name,
        "spec": spec,
        "settings": settings,
        "images_per_s": speed,
        **wap.evaluate(preds, gt),
    }


def time_detectors(
    detectors: list[FaceDetector], gt: list, root: Path, passes: int, threads: int | None
) -> list[list[float]]:
    """Images/s of each detector in each of `passes` timing passes over the split's images
    (`widerface_ap.run_detector`: batch 1, only the `detect` call on a decoded image is timed).

    The detectors take turns pass by pass, in reverse order every other pass, so that a machine that
    speeds up or slows down during the run (another process, heat) weighs on all of them alike.
    """
    speeds: list[list[float]] = [[] for _ in detectors]
    for p in range(passes):
        order = list(zip(detectors, speeds))
        for detector, row in order if p % 2 == 0 else order[::-1]:
            set_threads(threads)
            row.append(wap.run_detector(detector, gt, root, warmup=0)[1])
    return speeds


def markdown(
    results: list[dict],
    split: Path,
    threads: int | None,
    gt: list,
    closeups: CloseupSet | None,
    conf: float,
    speed_passes: int,
) -> str:
    """The results as a Markdown table with the split and face counts."""
    faces = wap.count_faces(gt)
    close = f" close-ups found (conf {conf}) |" if closeups else ""
    timing = f", median of {speed_passes} passes" if speed_passes else ""
    lines = [
        f"# WIDER FACE: {split.name} ({len(gt)} images at 640 px)",
        "",
        "Faces: "
        + ", ".join(f"{s} {faces[s]:,}" for s in wap.SETTINGS)
        + ". Official protocol (IoU 0.5, +1 px, min-max scores, 1,000 thresholds, VOC AP).",
        "",
        "| detector | settings | easy AP | medium AP | hard AP | "
        f"images/s ({threads or 'all'} threads{timing}) |{close}",
        "|---|---|---|---|---|---|" + ("---|" if closeups else ""),
    ]
    for r in results:
        aps = " | ".join(f"{r[s]:.3f}" for s in wap.SETTINGS)
        found = f" {100 * r['closeups']['found']:.1f}% |" if closeups else ""
        lines.append(f"| {r['detector']} | {r['settings']} | {aps} | {r['images_per_s']:.1f} |{found}")
    if closeups:
        lines += [
            "",
            f"Close-ups (fer_yolo/evaluation/closeups.py): {len(closeups.frames)} faces filling their frame, "
            f"{len(closeups.zooms)} zoomed views of media faces; share found per kind in results.json.",
        ]
    return "\n".join(lines) + "\n"


def evaluate_detectors(
    specs: list[str],
    widerface_root: Path,
    split: Path,
    out: Path,
    limit: int | None = None,
    threads: int | None = None,
    warmup: int = 2,
    closeups: CloseupSet | None = None,
    conf: float | None = None,
    speed_passes: int | None = None,
) -> str:
    """Score every detector on one split; write results.json, results.md and pr.png into `out`.

    With `closeups`, each detector also scores the share of close-up faces it finds at `conf` (default:
    the pipeline's report threshold). With `speed_passes`, images/s is the median of that many timing
    passes over the split after scoring, detectors in turn (`time_detectors`; each pass in results.json;
    None: `eval_detector.speed_passes`); otherwise it is the scoring pass's own timing.

    Returns:
        The Markdown table.

    Raises:
        DatasetError: missing or unreadable WIDER FACE files. ConfigError: unknown detector or settings
            (both raised before any detector runs). WeightsError: missing or unreadable detector weights.
    """
    set_threads(threads)
    speed_passes = default_of(speed_passes, "eval_detector.speed_passes")
    # Every detector is built before the first is run: a bad name, setting or weights file fails at once.
    detectors = [build_detector(name, **kwargs) for name, kwargs in map(parse_detector_spec, specs)]
    gt = wap.load_ground_truth(widerface_root, split)[:limit]
    wap.check_images(gt, widerface_root)
    results = [
        evaluate_one(spec, det, gt, widerface_root, threads, warmup) for spec, det in zip(specs, detectors)
    ]
    if speed_passes:
        for r, speeds in zip(results, time_detectors(detectors, gt, widerface_root, speed_passes, threads)):
            r["images_per_s"], r["speed_passes"] = float(np.median(speeds)), [round(v, 2) for v in speeds]
    if closeups:
        for r, det in zip(results, detectors):
            r["closeups"] = score_closeups(det, closeups, pipeline_default(conf, "conf"))
    summary = [{k: v for k, v in r.items() if k != "pr"} for r in results]
    curves = {
        r["spec"]: {s: {k: np.round(v, 6).tolist() for k, v in c.items()} for s, c in r["pr"].items()}
        for r in results
    }
    meta = {"split": str(split), "images": len(gt), "threads": threads, "speed_passes": speed_passes}
    meta["faces"] = wap.count_faces(gt)
    if closeups:
        meta["closeups"] = {"frames": len(closeups.frames), "zooms": len(closeups.zooms), "conf": conf}
    write_json(out / "results.json", {**meta, "results": summary, "pr": curves})
    table = markdown(results, split, threads, gt, closeups, conf, speed_passes)
    write_text(out / "results.md", table)
    plot_pr_curves({r["spec"]: r for r in results}, out / "pr.png")
    return table
