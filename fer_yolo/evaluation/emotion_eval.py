"""`fer-yolo eval emotion`: accuracy, macro-F1 and confusion matrices of an emotion classifier.

Splits: `test` and `val` of a crop dataset (FER2013 layout: test = PrivateTest_*, val = PublicTest_*),
plus optionally `ferplus_test` and `ferplus_val`: the same FER2013 images with their FER+ crowd labels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from fer_yolo.config import default_of
from fer_yolo.data.convert.ferplus import list_ferplus
from fer_yolo.data.crops import CropSet, load_crops, read_crops
from fer_yolo.data.face_crops import FaceBoxer, FaceImages, native_format, read_list, split_by_list
from fer_yolo.emotion.classifier import load_emotion_model
from fer_yolo.emotion.inference import predict_logits
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.errors import DatasetError
from fer_yolo.evaluation.metrics import classification_report
from fer_yolo.utils.device import select_device
from fer_yolo.utils.io import atomic_path, write_json, write_text
from fer_yolo.utils.paths import weights_names

LOGGER = logging.getLogger(__name__)

FERPLUS_PREFIX = "ferplus_"


def load_ferplus(
    fer2013_root: str | Path, ferplus_root: str | Path, splits: Iterable[str], pre: Preprocess
) -> dict[str, CropSet]:
    """FER2013 images of each split with FER+ majority labels (one emotion has > half of the votes).

    The same rule as `fer-yolo convert --format ferplus` (`votes_to_label`): images whose voters
    said unknown or not-a-face, or gave no emotion a majority, are left out.

    Args:
        fer2013_root: FER2013 image-folder dataset (train/, test/).
        ferplus_root: Folder with FER2013{Train,Valid,Test}/label.csv and ferplus_to_fer2013_jpg.csv.
        splits: Any of train, val (FER2013 PublicTest), test (PrivateTest).
        pre: Size and channels to read the crops at.

    Returns:
        ``ferplus_<split>`` -> CropSet, for each split.
    """
    items, _ = list_ferplus(Path(ferplus_root), Path(fer2013_root), "majority")
    sets = {}
    for split in splits:
        files = [(Path(i.source), i.label) for i in items if i.split == split]
        if not files:
            raise DatasetError(f"FER+ labels no image of split {split!r}", f"check {ferplus_root}")
        try:
            crops = read_crops(files, pre.input_size, pre.in_chans, f"FER+ {split}", pre.source_size)
            unreadable = len(crops.skipped)
        except DatasetError:  # none of them
            unreadable = len(files)
        if unreadable > len(files) // 2:
            raise DatasetError(
                f"{unreadable} of the {len(files)} FER2013 images FER+ labels for {split} are not "
                f"readable under {fer2013_root}",
                "FER+ labels FER2013's own image files: pass --data with the FER2013 image folders",
            )
        sets[FERPLUS_PREFIX + split] = crops
    return sets


def _check_shape(name: str, crops: CropSet, pre: Preprocess) -> None:
    want = (pre.input_size, pre.input_size, pre.in_chans)
    if crops.images.shape[1:] != want:
        raise DatasetError(
            f"split {name!r} holds crops of shape {crops.images.shape[1:]}, the model takes {want}",
            "load the crops at the model's input size and channels",
        )


def evaluate_emotion(
    model: torch.nn.Module,
    pre: Preprocess,
    data: str | Path | CropSet | Mapping[str, CropSet],
    splits: Iterable[str] | None = None,
    device: str | torch.device = "cpu",
    tta: str | None = None,
    batch: int = 64,
    ferplus_root: str | Path | None = None,
) -> dict[str, dict]:
    """Classification report of `model` on each split.

    Args:
        model: Emotion classifier returning (n, len(EMOTIONS)) scores; outputs in EMOTIONS order.
        pre: The preprocessing the model expects.
        data: A dataset folder, one CropSet (evaluated as ``test``) or split name -> CropSet.
        splits: Splits to evaluate when `data` is a folder (test = PrivateTest, val = PublicTest for FER2013;
            None: `eval_emotion.splits`).
        device: Torch device spec ('cpu', 'cuda', 'auto', ...): where `model` runs.
        tta: Test-time augmentation: none | flip | multicrop (see emotion.preprocess.tta_views; None:
            `eval_emotion.tta`).
        batch: Crops per forward pass.
        ferplus_root: If given (and `data` is a FER2013 folder), also evaluate each split with its FER+
            labels, as ``ferplus_<split>`` (``ferplus_val``, PublicTest with FER+ labels, is fit for
            model selection).

    Returns:
        Split name -> :func:`classification_report` dict, with ``skipped`` (unreadable files) added.
    """
    dev = device if isinstance(device, torch.device) else select_device(device)
    tta = default_of(tta, "eval_emotion.tta")
    if isinstance(data, CropSet):
        sets: dict[str, CropSet] = {"test": data}
    elif isinstance(data, Mapping):
        sets = dict(data)
    else:
        splits = list(default_of(splits, "eval_emotion.splits"))
        sets = {s: load_crops(data, s, pre.input_size, pre.in_chans, pre.source_size) for s in splits}
        if ferplus_root is not None:
            sets |= load_ferplus(data, ferplus_root, splits, pre)
    model = model.to(dev).eval()
    results = {}
    for name, crops in sets.items():
        _check_shape(name, crops, pre)
        logits = predict_logits(model, crops.images, pre, dev, batch=batch, tta=tta)
        report = classification_report(crops.labels, logits.argmax(1), EMOTIONS)
        results[name] = report | {"skipped": len(crops.skipped)}
        LOGGER.info(
            "%s: n=%d accuracy %.4f macro-F1 %.4f", name, report["n"], report["accuracy"], report["macro_f1"]
        )
    return results


def plot_confusion(report: Mapping, out_png: str | os.PathLike, title: str = "") -> None:
    """Draw a row-normalised confusion matrix (cell: share of the true class and count) as a PNG.

    Args:
        report: A :func:`classification_report` dict (``confusion_matrix``, ``class_names``, ...).
        out_png: PNG file to write atomically (parent folders are created).
        title: Prefix of the figure title (for example the split name).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(report["confusion_matrix"], np.int64)
    names = list(report["class_names"])
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig = Figure(figsize=(1.1 * len(names) + 2, 1.0 * len(names) + 1.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    for i, j in np.ndindex(cm.shape):
        colour = "white" if share[i, j] > 0.5 else "black"
        ax.text(j, i, f"{share[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=8, color=colour)
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45, ha="right")
    ax.set_yticks(ticks, [f"{n} ({r})" for n, r in zip(names, rows[:, 0])])
    ax.set(xlabel="predicted", ylabel="true (count)")
    acc, f1 = report.get("accuracy", 0.0), report.get("macro_f1", 0.0)
    stats = f"accuracy {acc:.4f}, macro-F1 {f1:.4f}, n={cm.sum()}"
    ax.set_title(f"{title}: {stats}" if title else stats, fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def detector_faces(
    data: str | Path, splits: Iterable[str], val_list: str = "", pipeline: Mapping | None = None
) -> dict[str, FaceImages]:
    """Each split's whole images with the pipeline's detector box on each (cached, `face_boxes`).

    With `val_list`, split `val` is the files it lists of `<data>/train` (e.g. datasets/rafdb_val.txt);
    `pipeline`: the config section whose YOLO detector draws the boxes (None: the shipped defaults).
    """
    boxer = FaceBoxer(pipeline)
    side, chans = native_format(data)
    faces = {}
    for split in splits:
        if split == "val" and val_list:
            crops = split_by_list(load_crops(data, "train", side, chans), data, read_list(val_list))[1]
        else:
            crops = load_crops(data, split, side, chans)
        faces[split] = boxer.faces(crops, data)
    return faces


def margin_sets(faces: Mapping[str, FaceImages], pre: Preprocess, margins: list[float]) -> dict[str, CropSet]:
    """The model inputs of each split cut at each margin, as the pipeline cuts them: `<split>` for one margin,
    `<split>_m<margin>` for several."""
    sets = {}
    for split, f in faces.items():
        for m in margins:
            name = split if len(margins) == 1 else f"{split}_m{m:g}"
            sets[name] = CropSet(f.fixed_inputs(pre, m), f.labels, [""] * len(f))
    return sets


def evaluate_emotion_models(
    weights: list[str | Path],
    data: str | Path,
    out: str | Path,
    splits: Iterable[str] | None = None,
    ferplus_root: str | Path | None = None,
    device: str | None = None,
    tta: str | None = None,
    margins: list[float] | None = None,
    val_list: str | None = None,
    pipeline: Mapping | None = None,
) -> str:
    """`fer-yolo eval emotion`: several models on the same splits, in one run.

    With `margins`, faces are cut from the boxes of `pipeline`'s YOLO detector (None: the shipped one) on the
    split's images at each margin (the pipeline's crops; `val_list`: see `detector_faces`), else the stored
    crops are resized to the input.
    Writes results.json, results.md and confusion_<model>_<split>.png into `out`.

    Returns:
        The Markdown table (accuracy and macro-F1 per model and split).
    """
    out = Path(out)
    results: dict[str, dict] = {}
    splits, device = default_of(splits, "eval_emotion.splits"), default_of(device, "eval_emotion.device")
    tta, val_list = default_of(tta, "eval_emotion.tta"), default_of(val_list, "eval_emotion.val_list")
    # every file loads before any is evaluated: a bad last file must not cost the others' results
    models = [load_emotion_model(w, device=select_device(device)) for w in weights]
    faces = detector_faces(data, splits, val_list, pipeline) if margins else None
    for w, name, (model, pre) in zip(weights, weights_names(weights), models):
        sets = margin_sets(faces, pre, margins) if faces else data
        reports = evaluate_emotion(model, pre, sets, splits, device, tta, ferplus_root=ferplus_root)
        results[name] = {"weights": str(w), "tta": tta, "splits": reports}
        for split, report in reports.items():
            plot_confusion(report, out / f"confusion_{name}_{split}.png", title=f"{name}: {split}")
    split_names = list(next(iter(results.values()))["splits"]) if results else []
    head = " | ".join(f"{s} acc | {s} macro-F1" for s in split_names)
    lines = [f"| model | {head} |", "|---" * (1 + 2 * len(split_names)) + "|"]
    for name, r in results.items():
        cells = " | ".join(
            f"{r['splits'][s]['accuracy'] * 100:.2f}% | {r['splits'][s]['macro_f1']:.3f}" for s in split_names
        )
        lines.append(f"| {name} | {cells} |")
    table = "\n".join(lines) + "\n"
    write_json(out / "results.json", results)
    write_text(out / "results.md", table)
    return table
