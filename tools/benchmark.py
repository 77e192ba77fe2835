"""End-to-end speed of the fer-yolo pipeline vs the original system's design, on a real clip.

    python tools/benchmark.py [--source CLIP] [--width 1280] [--frames 100] [--threads 2] [--out DIR]
                              [--emotion-weights HEAD ...] [--set pipeline.key=value ...]

Frames are decoded (and resized to --width, keeping the aspect ratio) before timing, so the numbers are the
pipeline's: detection, tracking, emotion head and annotation per frame. Rows:
- fer-yolo: the default pipeline (YOLO face weights at the default size, batched emotion head, tracking,
  smoothing, annotation);
- original design: MTCNN + a ResNet34 (48-px grey) run once per face, as the original system did;
- with --emotion-weights: the default pipeline again with each of these emotion heads (e.g. an int8 .onnx).
Run it on an idle machine (pause trainings): numbers with another job on the cores are meaningless.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from fer_yolo.annotation import FaceAnnotator
from fer_yolo.config import deep_update, load_config, parse_assignment
from fer_yolo.detectors import build_detector
from fer_yolo.emotion.classifier import EmotionClassifier
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.models import build_model
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.pipeline import Pipeline
from fer_yolo.sources import ArraySource, usable_fps
from fer_yolo.tracking import FaceTracker
from fer_yolo.utils.device import machine_name, set_threads
from fer_yolo.utils.io import save_checkpoint, write_json, write_text
from fer_yolo.utils.paths import data_root


class PerFaceClassifier(EmotionClassifier):
    """The original system's emotion step: one forward pass per face instead of one batch per frame."""

    def predict_inputs(self, inputs: np.ndarray) -> np.ndarray:
        rows = [super(PerFaceClassifier, self).predict_inputs(inputs[i : i + 1]) for i in range(len(inputs))]
        return np.concatenate(rows) if rows else np.zeros((0, len(EMOTIONS)), np.float32)


def load_frames(source: Path, width: int, n: int) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(str(source)), []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        frames.append(cv2.resize(frame, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


def measure(pipeline: Pipeline, frames: list[np.ndarray], fps: float) -> dict:
    annotator = FaceAnnotator()
    for _ in pipeline.run(ArraySource(frames[:1], fps), annotator=annotator):  # warm-up
        pass
    stages, faces_total = {"detect": 0.0, "track": 0.0, "classify": 0.0, "annotate": 0.0}, 0
    t0 = time.perf_counter()
    for result in pipeline.run(ArraySource(frames, fps), annotator=annotator):
        for k in stages:
            stages[k] += result.latency_ms[k]
        faces_total += len(result.faces)
    elapsed = time.perf_counter() - t0
    n = len(frames)
    return {
        "emotion_head": Path(pipeline.weights["emotion"]).name,  # the file that ran (not a refused int8 file)
        "fps": round(n / elapsed, 2),
        "ms_per_frame": {k: round(v / n, 2) for k, v in stages.items()},
        "faces_per_frame": round(faces_total / n, 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", help="video (default <data>/media/facenet_pytorch/video.mp4, several faces)")
    p.add_argument(
        "--width", type=int, default=1280, help="frames resized to this width (default 1280: 720p)"
    )
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-original", action="store_true", help="only the fer-yolo pipeline")
    p.add_argument("--emotion-weights", nargs="+", default=[], help="also time the pipeline with these heads")
    p.add_argument("--out", default="docs/benchmark", help="folder for results.json and results.md")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pipeline.key=value for every fer-yolo row",
    )
    args = p.parse_args()

    set_threads(args.threads)
    source = Path(args.source) if args.source else data_root() / "media/facenet_pytorch/video.mp4"
    fps = usable_fps(cv2.VideoCapture(str(source)).get(cv2.CAP_PROP_FPS))
    frames = load_frames(source, args.width, args.frames)
    overrides: dict = {}
    for assignment in args.set:
        overrides = deep_update(overrides, parse_assignment(assignment))
    cfg = load_config(overrides=overrides)["pipeline"] | {"device": "cpu", "threads": args.threads}
    rows = {
        "fer-yolo (YOLO face, batched emotion head, tracking)": measure(
            Pipeline.from_config(cfg), frames, fps
        )
    }
    names = [Path(head).name for head in args.emotion_weights]
    for head, name in zip(args.emotion_weights, names):
        label = name if names.count(name) == 1 else head  # two files of one name: a row each, by path
        rows[f"fer-yolo with {label}"] = measure(
            Pipeline.from_config(cfg | {"emotion_weights": head}), frames, fps
        )
    if not args.skip_original:
        resnet = Path(args.out) / ".resnet34_48_grey.pt"  # speed only: the weights' values do not matter
        pre = Preprocess(48, 1, (0.5,), (0.5,))
        meta = {"arch": "resnet34", "stem": "s2", "class_names": list(EMOTIONS), "preprocess": pre.to_dict()}
        save_checkpoint(
            resnet, {"state_dict": build_model("resnet34", len(EMOTIONS)).state_dict(), "meta": meta}
        )
        original = Pipeline(
            build_detector("mtcnn", device="cpu"),
            PerFaceClassifier(resnet, device="cpu", margin=cfg["margin"]),
            conf=0.0,
            tracker=FaceTracker(cfg["conf"], cfg["track_buffer_s"]),
            classify_every=1,  # every face of every frame, as the original system
        )
        rows["original design (MTCNN + ResNet34 per face)"] = measure(original, frames, fps)
        resnet.unlink()
    h, w = frames[0].shape[:2]
    machine = f"{machine_name()}, {args.threads} threads, torch {torch.__version__}"
    result = {
        "source": str(source),
        "frames": len(frames),
        "size_wh": [w, h],
        "machine": machine,
        "rows": rows,
    }
    lines = [
        f"Source: {source.name} resized to {w}x{h}, {len(frames)} frames; {machine}.",
        "",
        "| pipeline | emotion head file | frames/s | detect ms | track ms | emotion ms | annotate ms "
        "| faces/frame |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        ms = r["ms_per_frame"]
        lines.append(
            f"| {name} | {r['emotion_head']} | {r['fps']} | {ms['detect']} | {ms['track']} "
            f"| {ms['classify']} | {ms['annotate']} | {r['faces_per_frame']} |"
        )
    table = "\n".join(lines)
    write_json(Path(args.out) / "results.json", result)
    write_text(Path(args.out) / "results.md", table + "\n")
    print(table)
    print(json.dumps({k: v["fps"] for k, v in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
