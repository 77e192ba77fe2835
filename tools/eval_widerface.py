"""Evaluate face detectors on WIDER FACE (easy/medium/hard AP, official protocol) and time them.

Examples:
    python tools/eval_widerface.py --detector mtcnn --threads 2 --out runs/widerface
    python tools/eval_widerface.py --detector mtcnn mtcnn:min_face_size=10 --limit 50

A detector is ``NAME`` or ``NAME:key=value,key=value`` (values as Python literals, passed to the
detector's constructor). Writes results.json, results.md and pr.png into --out.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

from fer_yolo.errors import FerYoloError  # noqa: E402
from fer_yolo.evaluation import widerface_ap as wap  # noqa: E402
from fer_yolo.evaluation.plots import plot_pr_curves  # noqa: E402
from fer_yolo.utils.io import write_json, write_text  # noqa: E402
from fer_yolo.utils.paths import data_root  # noqa: E402

log = logging.getLogger("eval_widerface")

#: Detector name -> "module:Class", imported only when asked for.
DETECTORS = {
    "mtcnn": "fer_yolo.detectors.mtcnn:MtcnnDetector",
    "yolo": "fer_yolo.detectors.yolo:YoloFaceDetector",
}


def parse_spec(spec: str) -> tuple[str, dict]:
    """Split ``name:key=value,key=value`` into the name and constructor keyword arguments."""
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, re.split(r",(?![^\[\(]*[\]\)])", rest)):  # commas outside [] and ()
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: bad detector setting {item!r} in {spec!r}: use key=value")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()
    return name, kwargs


def check_name(name: str) -> None:
    """Exit with a message if `name` is not a registered detector."""
    if name not in DETECTORS:
        raise SystemExit(f"error: unknown detector {name!r}; choose from {', '.join(sorted(DETECTORS))}")


def build_detector(name: str, kwargs: dict):
    """Import and construct a registered detector."""
    check_name(name)
    module_name, class_name = DETECTORS[name].split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"error: detector {name!r} ({DETECTORS[name]}) is not available: {e}") from e
    return cls(**kwargs)


def set_threads(threads: int | None) -> None:
    """Set torch's and OpenCV's thread counts (no-op for None)."""
    if threads is None:
        return
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def evaluate_one(spec: str, gt: list, root: Path, args: argparse.Namespace) -> dict:
    """Build, warm up, run and evaluate one detector."""
    name, kwargs = parse_spec(spec)
    set_threads(args.threads)
    detector = build_detector(name, kwargs)
    detector.detect(np.zeros((480, 640, 3), np.uint8))  # lazy setup (some reset thread counts here)
    set_threads(args.threads)
    t0 = time.perf_counter()
    preds, speed = wap.run_detector(detector, gt, root, warmup=args.warmup)
    wall = time.perf_counter() - t0
    log.info("%s: %d images in %.0f s, %.2f images/s (detector only)", spec, len(gt), wall, speed)
    res = wap.evaluate(preds, gt)
    settings = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "defaults"
    return {"detector": spec, "settings": settings, "images_per_s": speed, **res}


def markdown(results: list[dict], split: Path, threads: int | None, gt: list) -> str:
    """The results table."""
    faces = wap.count_faces(gt)
    n_threads = threads or "default"
    lines = [
        f"# WIDER FACE: {split.name} ({len(gt)} images at 640 px)",
        "",
        "Faces: " + ", ".join(f"{s} {faces[s]:,}" for s in wap.SETTINGS)
        + ". Official protocol (IoU 0.5, +1 px, min-max scores, 1,000 thresholds, VOC AP).",
        "",
        f"| detector | settings | easy AP | medium AP | hard AP | images/s ({n_threads} threads) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        aps = " | ".join(f"{r[s]:.3f}" for s in wap.SETTINGS)
        lines.append(f"| {r['detector']} | {r['settings']} | {aps} | {r['images_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detector", nargs="+", required=True, help=f"one or more of {sorted(DETECTORS)}")
    p.add_argument("--split", type=Path, help="image list (default <data_root>/widerface/val_holdout.txt)")
    p.add_argument("--widerface", type=Path, help="widerface folder (default <data_root>/widerface)")
    p.add_argument("--limit", type=int, help="evaluate the first N images only (quick checks)")
    p.add_argument("--threads", type=int, help="torch/OpenCV threads (default: leave as is)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    p.add_argument("--out", type=Path, default=Path("runs/widerface"), help="output folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluate every --detector and write results.json, results.md and pr.png."""
    args = parse_args(argv)
    for spec in args.detector:
        check_name(parse_spec(spec)[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        root = args.widerface or data_root() / "widerface"
        split = args.split or root / "val_holdout.txt"
        gt = wap.load_ground_truth(root, split)[: args.limit]
        results = [evaluate_one(spec, gt, root, args) for spec in args.detector]
    except FerYoloError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    summary = [{k: v for k, v in r.items() if k != "pr"} for r in results]
    curves = {
        r["detector"]: {s: {k: np.round(v, 6).tolist() for k, v in c.items()} for s, c in r["pr"].items()}
        for r in results
    }
    meta = {"split": str(split), "images": len(gt), "threads": args.threads, "faces": wap.count_faces(gt)}
    write_json(args.out / "results.json", {**meta, "results": summary, "pr": curves})
    write_text(args.out / "results.md", markdown(results, split, args.threads, gt))
    plot_pr_curves({r["detector"]: r for r in results}, args.out / "pr.png")
    print(markdown(results, split, args.threads, gt))
    print(f"wrote {args.out}/results.json, results.md, pr.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
