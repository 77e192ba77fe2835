"""`fer-yolo train emotion`: the emotion-head training loop.

Recipe: in-memory crops, batched augmentation on the device (affine, mirror, photometric, random
erasing, CutMix/MixUp), label smoothing, class-balanced loss, SGD + Nesterov with warmup and cosine
decay, optional FER+ votes and distillation blended into the targets (the teachers' mirror-TTA softmax
on each clean image, or their softmax on each augmented batch the student sees),
an EMA of the weights (validated and saved as best.pt), bf16 autocast on CPUs that have it and fp16
AMP on CUDA, early stopping on the validation split. A run folder holds args.yaml,
results.csv, curves.png, weights/last.pt (resume) and weights/best.pt.
"""

from __future__ import annotations

import copy
import csv
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from fer_yolo.config import defaults, merge
from fer_yolo.data import face_boxes, face_crops
from fer_yolo.data.convert.ferplus import vote_distributions
from fer_yolo.data.crops import (
    SOFT_LABELS_FILE,
    CropSet,
    drop_leaks,
    is_grey,
    load_crops,
    read_crop,
    relative_paths,
)
from fer_yolo.emotion.classifier import load_emotion_model, load_state, read_emotion_checkpoint
from fer_yolo.emotion.inference import autocast_for, predict_logits
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.models import build_model, grow_resnet_state, load_imagenet_mobilenet_v2
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.errors import ConfigError, DatasetError, MissingSplit, WeightsError
from fer_yolo.evaluation.metrics import classification_report
from fer_yolo.train.augment import AugmentConfig, augment
from fer_yolo.train.schedule import warmup_cosine
from fer_yolo.utils.device import select_device
from fer_yolo.utils.io import atomic_path, increment_dir, load_checkpoint, save_checkpoint, write_text
from fer_yolo.utils.paths import absolute_path

LOGGER = logging.getLogger(__name__)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
#: offline: the teachers' mirror-TTA softmax on each clean training image, computed once per run;
#: online: their softmax on each augmented batch, as the student sees it (OnlineTeachers).
TEACHER_MODES = ("offline", "online")


@dataclass
class EmotionTrainConfig:
    """The `train_emotion` config section (defaults and meaning of each key: fer_yolo/cfg/default.yaml)."""

    data: str
    crops: str
    extra_data: list
    extra_val: list
    data_share: float
    margin_range: list
    box_jitter: float
    model: str
    stem: str
    input_size: int
    in_chans: int
    epochs: int
    batch: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    warmup_epochs: float
    final_lr_ratio: float
    label_smoothing: float
    ferplus: str
    ferplus_weight: float
    teachers: list
    teacher_weight: float
    teacher_mode: str
    class_balance: float
    ema_decay: float
    patience: int
    amp: bool
    device: str
    threads: int
    seed: int
    init: str
    imagenet: str
    project: str
    name: str
    augment: AugmentConfig

    @classmethod
    def from_dict(cls, d: dict) -> EmotionTrainConfig:
        """Build from a config section; keys missing from `d` (older checkpoints) take the defaults."""
        d = merge(defaults()["train_emotion"], d)
        return cls(**{k: v for k, v in d.items() if k != "augment"}, augment=AugmentConfig(**d["augment"]))

    def absolute(self) -> EmotionTrainConfig:
        """These settings with every file and folder made absolute: a run resumes from any directory."""
        keys = ("data", "ferplus", "init", "imagenet", "project")
        paths = {k: absolute_path(getattr(self, k)) for k in keys}
        lists = {
            k: [absolute_path(p) for p in getattr(self, k)] for k in ("teachers", "extra_data", "extra_val")
        }
        return replace(self, **paths, **lists)

    @property
    def preprocess(self) -> Preprocess:
        if self.imagenet:  # ImageNet-initialised networks keep the statistics they were trained with
            return Preprocess(self.input_size, self.in_chans, IMAGENET_MEAN, IMAGENET_STD)
        return Preprocess(self.input_size, self.in_chans, (0.5,) * self.in_chans, (0.5,) * self.in_chans)


class ModelEma:
    """Exponential moving average of a model's parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        self.decay = decay
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # Short warm-up of the decay so early EMA weights are not dominated by the random init.
        d = min(self.decay, (1 + step) / (10 + step))
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(d).add_(m.detach(), alpha=1 - d)
            else:
                e.copy_(m)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against class distributions (n, k), each class's term scaled by `weight`."""
    w = (target * weight).sum(1)
    loss = -(target * F.log_softmax(logits.float(), dim=1)).sum(1)
    return (loss * w).sum() / w.sum()


def mix_votes(target: torch.Tensor, crops: CropSet, root: str, ferplus: str, weight: float) -> torch.Tensor:
    """Blend each FER2013 crop's target with its FER+ votes: (1 - weight) * target + weight * votes.

    With weight < 0.5 the FER2013 label stays the arg-max: the votes only spread the rest of the
    mass over the emotions people also saw. Crops without FER+ votes keep their target.

    Raises:
        DatasetError: No crop of `root` has FER+ votes (not the FER2013 image folders).
    """
    votes = vote_distributions(ferplus)
    found = [(i, votes[rel]) for i, rel in enumerate(relative_paths(crops.paths, root)) if rel in votes]
    if not found:
        raise DatasetError(
            f"no training crop of {root} has FER+ votes in {ferplus}",
            "ferplus mixing needs the FER2013 image folders as --data",
        )
    idx, dist = zip(*found)
    out = target.clone()
    out[list(idx)] = (1 - weight) * target[list(idx)] + weight * torch.from_numpy(np.stack(dist))
    LOGGER.info("FER+ votes mixed into %d of %d training targets (weight %.2f)", len(idx), len(crops), weight)
    return out


def check_teachers(cfg: EmotionTrainConfig) -> None:
    """Fail before any data is read: teachers must be files, blend weights shares in [0, 1].

    Raises:
        ConfigError: A weight outside [0, 1] or a teacher that is not a path.
        WeightsError: A teacher file is missing.
    """
    for key in ("ferplus_weight", "teacher_weight"):
        if not 0 <= getattr(cfg, key) <= 1:
            raise ConfigError(f"{key} {getattr(cfg, key)} is not a share", f"set {key} between 0 and 1")
    if cfg.teacher_mode not in TEACHER_MODES:
        raise ConfigError(f"unknown teacher_mode {cfg.teacher_mode!r}", f"choose one of {TEACHER_MODES}")
    for teacher in cfg.teachers:
        if not isinstance(teacher, str) or not teacher:
            raise ConfigError(f"teacher {teacher!r} is not a path", "list emotion weight files in teachers")
        if not Path(teacher).expanduser().is_file():
            raise WeightsError(f"teacher weights not found: {teacher}", "pass existing emotion weight files")


def teacher_probs(
    teachers: list[str],
    view: Callable[[Preprocess], np.ndarray],
    labels: np.ndarray,
    device: torch.device,
    amp: bool,
) -> torch.Tensor:
    """The mean softmax (n, k) of `teachers` on each training image, each with mirror TTA at its own input.

    Args:
        view: A teacher's preprocessing -> every training image, un-augmented, as that teacher reads it
            (uint8 (n, s, s, c) at its own size and channels).
        labels: The training labels (logged: how often each teacher agrees with them).

    Raises:
        WeightsError: A teacher cannot be loaded.
        DatasetError: A training image can no longer be read.
    """
    total = torch.zeros(len(labels), len(EMOTIONS))
    for path in teachers:
        model, pre = load_emotion_model(Path(path).expanduser(), device)
        probs = torch.from_numpy(predict_logits(model, view(pre), pre, device, amp=amp, tta="flip")).exp()
        agree = float((probs.argmax(1).numpy() == labels).mean())
        LOGGER.info("teacher %s agrees with %.1f%% of the training labels", path, 100 * agree)
        total += probs
    return total / len(teachers)


def _same_training_set(kept: dict, teachers: list[str], labels: torch.Tensor) -> bool:
    """Whether cached teacher targets are for these teachers and this training set (one row per image, the
    labels in the same order; files cached before the labels were recorded: the same number of rows)."""
    if kept.get("teachers") != teachers or len(kept["probs"]) != len(labels):
        return False
    return "labels" not in kept or torch.equal(kept["labels"], labels)


class OnlineTeachers:
    """Teachers that see each augmented batch as the student does ("consistent" distillation).

    Targets computed once on the clean image disagree with a crop that augmentation has rotated, erased or
    cut into another face; here every teacher reads the very batch the student trains on, at its own input
    size and channels, and returns the mean softmax.

    Raises:
        ConfigError: No teachers.
        WeightsError: A teacher cannot be loaded.
    """

    def __init__(self, teachers: list[str], device: torch.device, amp: bool) -> None:
        if not teachers:
            raise ConfigError("online distillation without teachers", "list emotion weight files in teachers")
        self.models = [load_emotion_model(Path(t).expanduser(), device) for t in teachers]
        self.device, self.amp = device, amp

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Mean softmax (n, k) for a float RGB or grey batch (n, c, s, s) in [0, 1], before standardisation.

        A teacher trained on grey faces (`pre.grey`) or on one channel sees the batch grey (ITU-R 601 luma, as
        OpenCV makes it in the pipeline), copied into its channels.
        """
        total = 0
        luma = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
        for model, pre in self.models:
            v = (x * luma).sum(1, keepdim=True) if x.shape[1] == 3 and (pre.grey or pre.in_chans == 1) else x
            v = v.expand(-1, pre.in_chans, -1, -1) if v.shape[1] != pre.in_chans else v
            if v.shape[-1] != pre.input_size:
                v = F.interpolate(v, pre.input_size, mode="bilinear", antialias=True, align_corners=False)
            v = pre.standardize(v).contiguous(memory_format=torch.channels_last)
            with autocast_for(self.device, self.amp):
                total = total + model(v).float().softmax(1)
        return total / len(self.models)


def class_weights(counts: np.ndarray, power: float) -> torch.Tensor:
    """Loss weight per class, counts**-power, normalised to average 1 over the training samples."""
    counts = np.maximum(counts, 1).astype(np.float64)
    w = counts**-power
    w /= (w * counts).sum() / counts.sum()
    return torch.tensor(w, dtype=torch.float32)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def plot_curves(results_csv: Path, out_png: Path) -> None:
    """Loss and accuracy curves from results.csv, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with results_csv.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    ep = [int(r["epoch"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [float(r["train_loss"]) for r in rows], label="train loss")
    a.plot(ep, [float(r["val_loss"]) for r in rows], label="val loss")
    a.set_xlabel("epoch"), a.legend(), a.grid(alpha=0.3)
    b.plot(ep, [float(r["val_acc"]) for r in rows], label="val accuracy (EMA)")
    b.plot(ep, [float(r["val_macro_f1"]) for r in rows], label="val macro-F1 (EMA)")
    b.set_xlabel("epoch"), b.legend(), b.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def checkpoint_meta(cfg: EmotionTrainConfig, pre: Preprocess) -> dict:
    """What a consumer of the weights needs to rebuild and feed the model."""
    return {"arch": cfg.model, "stem": cfg.stem, "class_names": list(EMOTIONS), "preprocess": pre.to_dict()}


def _load_data(cfg: EmotionTrainConfig) -> tuple[CropSet, CropSet]:
    s, c = cfg.input_size, cfg.in_chans
    train, val = load_crops(cfg.data, "train", s, c), load_crops(cfg.data, "val", s, c)
    held_out = [val]
    try:
        held_out.append(load_crops(cfg.data, "test", s, c))
    except MissingSplit:  # a dataset without a test split has nothing more to leak into
        pass
    train, removed = drop_leaks(train, *held_out)
    LOGGER.info(
        "train %d crops (%d duplicates of val/test or blank removed), val %d", len(train), removed, len(val)
    )
    return train, val


#: crops: stored (the dataset's crops as they are) | detector (cut from the shipped detector's boxes).
CROP_MODES = ("stored", "detector")


@dataclass
class TrainSet:
    """What a run trains and validates on, whichever way its crops are made.

    Attributes:
        pre: How the head's inputs are made (what its checkpoint records).
        labels: int64 (n,) class of each training sample.
        target: float32 (n, 7) training targets before smoothing (FER+ votes, teachers blended in).
        batch: Training sample ids -> float (b, c, s, s) in [0, 1] (augmentation follows).
        order: One epoch's sample ids, shuffled (torch's generator: resumed runs draw the same).
        val: (name, uint8 inputs (m, s, s, c), labels) of each validation set; their mean accuracy selects.
        epoch_size: Training samples an epoch draws.
        teacher_view: A teacher's preprocessing -> every training sample, un-augmented, as that teacher reads
            it (offline distillation): the stored crop, or the face cut from its box at the pipeline's margin.
    """

    pre: Preprocess
    labels: np.ndarray
    target: torch.Tensor
    batch: Callable[[torch.Tensor], torch.Tensor]
    order: Callable[[], torch.Tensor]
    val: list[tuple[str, np.ndarray, np.ndarray]]
    epoch_size: int
    teacher_view: Callable[[Preprocess], np.ndarray]


def one_hot(crops: CropSet) -> torch.Tensor:
    """Targets of a crop set: its FER+ soft labels where it has them, else its folder labels."""
    if crops.soft is not None:  # FER+ vote distributions (convert --ferplus-labels soft)
        LOGGER.info("training on soft labels (%s)", SOFT_LABELS_FILE)
        return torch.from_numpy(crops.soft)
    return F.one_hot(torch.from_numpy(crops.labels), len(EMOTIONS)).float()


def stored_set(cfg: EmotionTrainConfig) -> TrainSet:
    """The dataset's crops as stored, resized to the input: one in-memory tensor."""
    train, val = _load_data(cfg)
    # real faces are fed as the training faces were: grey or not, no sharper
    pre = replace(cfg.preprocess, grey=is_grey(train.images), source_size=train.source_size)
    target = one_hot(train)
    if cfg.ferplus:
        target = mix_votes(target, train, cfg.data, cfg.ferplus, cfg.ferplus_weight)
    images = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous()

    def teacher_view(t: Preprocess) -> np.ndarray:
        if train.images.shape[1:] == (t.input_size, t.input_size, t.in_chans):
            return train.images
        out = []  # a teacher trained at another size or on other channels reads the files again
        for file in train.paths:
            if (img := read_crop(Path(file), t.input_size, t.in_chans, t.source_size)) is None:
                raise DatasetError(f"cannot read {file} again for a teacher", "check the dataset")
            out.append(img)
        return np.stack(out)

    return TrainSet(
        pre,
        train.labels,
        target,
        lambda idx: images[idx].float().div_(255),
        lambda: torch.randperm(len(train)),
        [("val", val.images, val.labels)],
        len(train),
        teacher_view,
    )


def detector_set(cfg: EmotionTrainConfig) -> TrainSet:
    """Faces cut from the detector's boxes on `data` and each of `extra_data`, as the pipeline cuts them.

    Validation: each dataset's own val split, or the files its `extra_val` list names; faces cut at the
    pipeline's margin. Each epoch draws `data_share` of `data`'s training images and all extra ones.
    """
    if len(cfg.extra_val) not in (0, len(cfg.extra_data)):
        raise ConfigError("extra_val must list one file per extra_data folder", "use '' for none")
    if not 0 < cfg.data_share <= 1:
        raise ConfigError(f"data_share {cfg.data_share} is not in (0, 1]", "set a share of data's images")
    lo, hi = cfg.margin_range
    if not 0 <= lo <= hi:
        raise ConfigError(
            f"margin_range {cfg.margin_range} is not a range", "give [low, high], 0 <= low <= high"
        )
    boxer = face_crops.FaceBoxer()
    roots = [cfg.data, *cfg.extra_data]
    lists = ["", *(cfg.extra_val or [""] * len(cfg.extra_data))]
    parts, targets, val, colour = [], [], [], False
    for root, val_list in zip(roots, lists):
        crops, faces, held = face_crops.load_split_faces(boxer, root, val_list)
        target = one_hot(crops)
        if cfg.ferplus and root == cfg.data:
            target = mix_votes(target, crops, root, cfg.ferplus, cfg.ferplus_weight)
        parts.append(faces)
        targets.append(target)
        colour |= not is_grey(crops.images)
        if held is not None:
            val.append((Path(root).name, held))
    pre = replace(cfg.preprocess, grey=not colour, source_size=0)  # faces of every sharpness were trained on
    margin = defaults()["pipeline"]["margin"]
    faces = face_crops.FaceImages.concat(parts)
    n_data = len(parts[0])

    def batch(idx: torch.Tensor) -> torch.Tensor:
        i = idx.numpy()
        margins = face_crops.draw_margins(len(i), (lo, hi))
        boxes = face_crops.jitter_boxes(faces.boxes[i], cfg.box_jitter, torch.rand(len(i), 3).numpy())
        return torch.from_numpy(faces.inputs(pre, i, margins, boxes)).permute(0, 3, 1, 2).float().div_(255)

    n_own = int(round(cfg.data_share * n_data))

    def order() -> torch.Tensor:
        ids = torch.cat([torch.randperm(n_data)[:n_own], torch.arange(n_data, len(faces))])
        return ids[torch.randperm(len(ids))]

    val_sets = [(name, f.fixed_inputs(pre, margin), f.labels) for name, f in val]
    LOGGER.info("validation at margin %.2f: %s", margin, ", ".join(f"{n} {len(y)}" for n, _, y in val_sets))
    return TrainSet(
        pre,
        faces.labels,
        torch.cat(targets),
        batch,
        order,
        val_sets,
        n_own + len(faces) - n_data,
        lambda t: faces.fixed_inputs(t, margin),  # each face as the pipeline would hand it to that teacher
    )


def load_init(model: torch.nn.Module, cfg: EmotionTrainConfig) -> None:
    """Start `model` from the emotion checkpoint `cfg.init`, trained as the same model on the same input.

    The input size may differ (the networks are fully convolutional up to global pooling): a head
    trained at one size can be fine-tuned at another. A ResNet18 may start a ResNet34 and grey weights a
    colour model with the same statistics (`grow_resnet_state`: the grown network computes what the
    smaller one did).

    Raises:
        ConfigError: The checkpoint was trained as another architecture, with other channels or statistics.
        WeightsError: Its tensors do not fit the model.
    """
    state, meta = read_emotion_checkpoint(Path(cfg.init).expanduser())
    theirs = {"arch": meta.get("arch"), "stem": meta.get("stem"), **meta.get("preprocess", {})}
    ours = {"arch": cfg.model, "stem": cfg.stem, **cfg.preprocess.to_dict()}
    grown = theirs.get("arch") == "resnet18" and cfg.model == "resnet34"
    widened = theirs.get("in_chans") == 1 and cfg.in_chans == 3 and cfg.model.startswith("resnet")
    if widened:  # one grey channel's statistics, now for each colour channel
        theirs |= {k: theirs.get(k, [None])[:1] * 3 for k in ("mean", "std")} | {"in_chans": 3}
    if grown:
        theirs["arch"] = cfg.model
    settings = dict(arch="model", stem="stem", in_chans="in_chans", mean="imagenet", std="imagenet")
    for key, setting in settings.items():
        if theirs.get(key) != ours[key]:
            raise ConfigError(
                f"{cfg.init} has {key} {theirs.get(key)}, this run {ours[key]}",
                f"set {setting} as the weights were trained",
            )
    if theirs.get("input_size") != cfg.input_size:
        LOGGER.info("fine-tuning %d px weights at %d px", theirs.get("input_size"), cfg.input_size)
    if grown or widened:
        LOGGER.info(
            "growing %s (%d channels) into %s (%d)",
            meta.get("arch"),
            meta["preprocess"]["in_chans"],
            cfg.model,
            cfg.in_chans,
        )
        state = grow_resnet_state({k: v.float() for k, v in state.items()}, model)
    load_state(model, state, f"{cfg.init} does not fit {cfg.model}", "pass weights of this model")


def make_optimizer(model: torch.nn.Module, cfg: EmotionTrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or AdamW; weight decay only on conv and linear weights."""
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}", "choose sgd or adamw")


def read_last(resume: str | Path) -> tuple[dict | None, dict, Path]:
    """The state of an interrupted run (its folder or weights/last.pt), its settings and the run folder.

    A run stopped before its first checkpoint has no state: it starts again from its args.yaml.

    Raises:
        WeightsError: The file is not a fer-yolo training checkpoint (e.g. a best.pt).
    """
    path = Path(resume).expanduser()
    if path.is_dir() and not (path / "weights" / "last.pt").is_file() and (path / "args.yaml").is_file():
        LOGGER.info("%s stopped before its first checkpoint: starting it again from its args.yaml", path)
        return None, yaml.safe_load((path / "args.yaml").read_text()), path
    last = path / "weights" / "last.pt" if path.is_dir() else path
    if not last.is_file():
        raise WeightsError(f"nothing to resume: {last} not found", "pass a run folder made by fer-yolo train")
    state = load_checkpoint(last)
    if not isinstance(state, dict) or "config" not in state or "optimizer" not in state:
        raise WeightsError(
            f"{last} is not a training checkpoint (best.pt and shipped files hold weights only)",
            "resume from the run folder or its weights/last.pt; start from weights with --init",
        )
    return state, state["config"], last.parent.parent


def keep_rows(results_csv: Path, epochs: int) -> None:
    """Drop rows past `epochs` (an epoch logged before its checkpoint was written is run again)."""
    if not results_csv.is_file():
        return
    lines = results_csv.read_text().splitlines(keepends=True)
    if len(lines) > epochs + 1:
        write_text(results_csv, "".join(lines[: epochs + 1]))


@contextmanager
def run_log(run: Path) -> Iterator[None]:
    """Copy the messages of this module and of the data it reads, INFO and up, into <run>/train.log.

    The console keeps its own verbosity: the CLI sets the level on its handler, not only on the root.
    """
    handler = logging.FileHandler(run / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    loggers = [LOGGER, face_crops.LOGGER, face_boxes.LOGGER]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


def train_emotion(
    cfg: EmotionTrainConfig, resume: str | Path | None = None, device: str | None = None
) -> Path:
    """Train an emotion classifier; returns the run folder.

    Args:
        cfg: Run settings.
        resume: A run folder or its weights/last.pt to continue from (settings come from it).
        device: With `resume`, the device to continue on (a run moved to another machine).
    """
    if resume:
        state, settings, run = read_last(resume)
        cfg = EmotionTrainConfig.from_dict(settings | ({"device": device} if device else {}))
        if state and (state["epoch"] >= cfg.epochs or state["stale"] >= cfg.patience):
            why = "its last epoch" if state["epoch"] >= cfg.epochs else "early stop"
            LOGGER.info("%s finished at epoch %d (%s): nothing to resume", run, state["epoch"], why)
            return run
        check_teachers(cfg)
        keep_rows(run / "results.csv", state["epoch"] if state else 0)
    else:
        check_teachers(cfg)
        state, cfg = None, cfg.absolute()
        run = increment_dir(Path(cfg.project), cfg.name)
        write_text(run / "args.yaml", yaml.safe_dump(asdict(cfg), sort_keys=False))
    (run / "weights").mkdir(exist_ok=True)
    with run_log(run):
        return _train(cfg, run, state)


def _train(cfg: EmotionTrainConfig, run: Path, state: dict | None) -> Path:
    LOGGER.info("run folder %s (continue an interrupted run: fer-yolo train emotion --resume %s)", run, run)
    device = select_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    if cfg.crops not in CROP_MODES:
        raise ConfigError(f"unknown crops {cfg.crops!r}", f"choose one of {CROP_MODES}")
    data = detector_set(cfg) if cfg.crops == "detector" else stored_set(cfg)
    steps_per_epoch = data.epoch_size // cfg.batch
    if steps_per_epoch == 0:
        raise ConfigError(f"{data.epoch_size} training crops make no batch of {cfg.batch}", "lower batch")
    pre = data.pre
    model = build_model(cfg.model, len(EMOTIONS), cfg.in_chans, cfg.stem)
    if cfg.imagenet and not state:
        load_imagenet_mobilenet_v2(model, cfg.imagenet)
    if cfg.init and not state:
        load_init(model, cfg)
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    ema = ModelEma(model, cfg.ema_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    start_epoch, step, best, stale = 0, 0, -1.0, 0
    if state:
        model.load_state_dict(state["model"])
        ema.module.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, step, best, stale = state["epoch"], state["step"], state["best"], state["stale"]
        if "rng" in state:  # the shuffles and augmentations an uninterrupted run would have drawn
            torch.set_rng_state(state["rng"])
            if state["scaler"]:  # empty when the run was on the CPU (no loss scaling)
                scaler.load_state_dict(state["scaler"])
            if device.type == "cuda" and state.get("cuda_rng"):
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        else:
            torch.manual_seed(cfg.seed + start_epoch)
        LOGGER.info("resuming at epoch %d (best val acc %.4f)", start_epoch + 1, best)

    counts = np.bincount(data.labels, minlength=len(EMOTIONS))
    weight = class_weights(counts, cfg.class_balance).to(device)
    target = data.target
    online = None
    if cfg.teachers and cfg.teacher_mode == "online":  # distillation on each batch as the student sees it
        online = OnlineTeachers(cfg.teachers, device, cfg.amp)
    elif cfg.teachers:  # distillation: the teachers' view of each training image, kept for --resume
        cached, labels = run / "teacher_probs.pt", torch.from_numpy(data.labels)
        kept = load_checkpoint(cached) if cached.is_file() else None
        if kept is not None and not _same_training_set(kept, cfg.teachers, labels):
            LOGGER.warning("%s is for other teachers or training images: computing it again", cached)
            kept = None
        if kept is None:
            probs = teacher_probs(cfg.teachers, data.teacher_view, data.labels, device, cfg.amp)
            save_checkpoint(cached, {"probs": probs, "teachers": cfg.teachers, "labels": labels})
        else:
            probs = kept["probs"]
        target = (1 - cfg.teacher_weight) * target + cfg.teacher_weight * probs.to(target)
    smooth = target * (1 - cfg.label_smoothing) + cfg.label_smoothing / len(EMOTIONS)
    total, warmup = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0, loss_sum = time.time(), 0.0
        order = data.order()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        for i in bar:
            idx = order[i * cfg.batch : (i + 1) * cfg.batch]
            x = data.batch(idx).to(device, non_blocking=True)
            x, target = augment(x, smooth[idx].to(device), cfg.augment)
            if online:
                target = (1 - cfg.teacher_weight) * target + cfg.teacher_weight * online(x)
            x = pre.standardize(x).contiguous(memory_format=torch.channels_last)
            lr = warmup_cosine(step, total, warmup, cfg.lr, cfg.final_lr_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            with autocast_for(device, cfg.amp):
                loss = soft_cross_entropy(model(x), target, weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            ema.update(model, step)
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss_sum / (i + 1):.3f}", lr=f"{lr:.4f}")
        scores, losses = {}, []
        for name, inputs, labels in data.val:
            logits = predict_logits(ema.module, inputs, pre, device, amp=cfg.amp)
            losses.append(float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))))
            scores[name] = classification_report(labels, logits.argmax(1), EMOTIONS)
        # selection: the mean accuracy over the validation sets (one set: its accuracy)
        acc = float(np.mean([r["accuracy"] for r in scores.values()]))
        f1 = float(np.mean([r["macro_f1"] for r in scores.values()]))
        per_set = {} if len(scores) == 1 else {f"{n}_acc": round(r["accuracy"], 5) for n, r in scores.items()}
        improved = acc > best
        best, stale = (acc, 0) if improved else (best, stale + 1)
        row = {
            "epoch": epoch + 1,
            "train_loss": round(loss_sum / max(steps_per_epoch, 1), 5),
            "val_loss": round(float(np.mean(losses)), 5),
            "val_acc": round(acc, 5),
            "val_macro_f1": round(f1, 5),
            **per_set,
            "lr": round(lr, 6),
            "epoch_s": round(time.time() - t0, 1),
        }
        _append_csv(run / "results.csv", row)
        LOGGER.info("epoch %d/%d %s%s", epoch + 1, cfg.epochs, row, " *best*" if improved else "")
        meta = checkpoint_meta(cfg, pre) | {
            "epoch": epoch + 1,
            "val": {"accuracy": acc, "macro_f1": f1} | per_set,
        }
        if improved:
            save_checkpoint(
                run / "weights" / "best.pt", {"state_dict": ema.module.state_dict(), "meta": meta}
            )
        save_checkpoint(
            run / "weights" / "last.pt",
            {
                "model": model.state_dict(),
                "ema": ema.module.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "best": best,
                "stale": stale,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                "scaler": scaler.state_dict(),
                "config": asdict(cfg),
                "meta": meta,
            },
        )
        plot_curves(run / "results.csv", run / "curves.png")
        if stale >= cfg.patience:
            LOGGER.info("early stop: no val improvement in %d epochs", cfg.patience)
            break
    return run
