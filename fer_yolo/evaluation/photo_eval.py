"""Emotion accuracy on whole labelled photos, end to end: detector + head, as `fer-yolo predict` runs them.

A folder `<root>/<emotion>/*.jpg` of whole photos (one subject each, any size) goes through the pipeline
frame by frame; the photo's answer is the emotion of its largest reported face. A photo in which no face
is reported counts as wrong (column "no face" of the confusion matrix); unreadable files are skipped and
listed with their reason. Macro-F1 is averaged over the seven emotions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fer_yolo.data.crops import labelled_files
from fer_yolo.data.images import BadImage, decode_image, read_bytes
from fer_yolo.emotion.labels import EMOTION_PROBS_KEY, EMOTIONS
from fer_yolo.errors import DatasetError
from fer_yolo.evaluation.metrics import classification_report

LOGGER = logging.getLogger(__name__)
#: The extra predicted class of a photo in which the pipeline reports no face.
NO_FACE = "no face"


def photo_files(root: str | Path) -> list[tuple[Path, int]]:
    """(photo, class id) of `<root>/<emotion>/*`, sorted; folders that are not emotions are skipped with a
    warning, as in crop datasets.

    Raises:
        DatasetError: No labelled photos there.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"photo folder not found: {root}", "pass a folder laid out as <emotion>/*.jpg")
    files = labelled_files(root)
    if not files:
        raise DatasetError(f"no labelled photos under {root}", "lay them out as <root>/<emotion>/*.jpg")
    return files


def photo_report(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Report over 7 emotions + "no face" (predicted -1): accuracy counts a missed face as wrong; macro-F1
    runs over the emotions true or predicted at least once ("no face" is not an emotion to average).

    Example:
        >>> r = photo_report(np.array([3, 3, 0, 0]), np.array([3, -1, 0, 3]))
        >>> r["accuracy"], r["no_face"], round(r["macro_f1"], 3)  # F1: happy 0.5, angry 0.667
        (0.5, 1, 0.583)
    """
    k = len(EMOTIONS)
    answers = np.where(predicted < 0, k, predicted)
    report = classification_report(labels, answers, (*EMOTIONS, NO_FACE), averaged=k)
    report["no_face"] = int((predicted < 0).sum())
    return report


def evaluate_photos(pipeline, root: str | Path) -> dict:
    """Score a pipeline on labelled whole photos.

    Args:
        pipeline: A `fer_yolo.Pipeline` (its detector, threshold, margin and head, as predict runs them).
        root: `<root>/<emotion>/*.jpg`.

    Returns:
        `photo_report` of the photos, with `photos` (file, true, predicted or "no face", faces found) and
        `skipped` ([file, reason]).
    """
    labels, predicted, photos, skipped = [], [], [], []
    for path, cid in photo_files(root):
        try:
            image = decode_image(read_bytes(path))
        except BadImage as e:
            skipped.append([str(path), str(e)])
            continue
        faces, _ = pipeline.process(image)
        if len(faces):
            area = (faces.xyxy[:, 2] - faces.xyxy[:, 0]) * (faces.xyxy[:, 3] - faces.xyxy[:, 1])
            guess = int(np.argmax(faces.data[EMOTION_PROBS_KEY][int(np.argmax(area))]))
        else:
            guess = -1
        labels.append(cid)
        predicted.append(guess)
        photos.append([str(path), EMOTIONS[cid], EMOTIONS[guess] if guess >= 0 else NO_FACE, len(faces)])
    for file, reason in skipped:
        LOGGER.warning("skipped %s: %s", file, reason)
    if not labels:
        raise DatasetError(f"no readable photos under {root}", "check the folder")
    report = photo_report(np.array(labels), np.array(predicted))
    LOGGER.info(
        "%s: %d photos, accuracy %.4f, macro-F1 %.4f, no face in %d",
        root,
        report["n"],
        report["accuracy"],
        report["macro_f1"],
        report["no_face"],
    )
    return report | {"photos": photos, "skipped": skipped}


def evaluate_photo_models(weights: list[str], root: str | Path, out: str | Path, pipeline_cfg: dict) -> str:
    """`fer-yolo eval emotion --photos`: each emotion head in the pipeline (`pipeline_cfg`) on the photos.

    Writes results.json, results.md and confusion_<model>_photos.png into `out`.

    Returns:
        The Markdown table: accuracy, macro-F1, photos with no face, per-class recall.
    """
    from fer_yolo.evaluation.emotion_eval import plot_confusion
    from fer_yolo.pipeline import Pipeline
    from fer_yolo.utils.io import write_json, write_text
    from fer_yolo.utils.paths import weights_names

    out = Path(out)
    results = {}
    # every pipeline is built before any runs: a bad last file must not cost the others' results
    pipelines = [Pipeline.from_config(pipeline_cfg | {"emotion_weights": str(w)}) for w in weights]
    for name, pipeline in zip(weights_names(weights), pipelines):
        report = evaluate_photos(pipeline, root)
        results[name] = {"weights": pipeline.weights, "photos_root": str(root), "report": report}
        plot_confusion(report, out / f"confusion_{name}_photos.png", title=f"{name}: photos")
    head = " | ".join(f"{e} recall" for e in EMOTIONS)
    lines = [
        f"| model | photos | accuracy | macro-F1 | no face | {head} |",
        "|---" * (5 + len(EMOTIONS)) + "|",
    ]
    for name, r in results.items():
        rep = r["report"]
        recalls = " | ".join(  # "-": no photo of that emotion, nothing to recall
            f"{c['recall']:.2f}" if c["support"] else "-" for c in map(rep["per_class"].get, EMOTIONS)
        )
        lines.append(
            f"| {name} | {rep['n']} | {rep['accuracy'] * 100:.2f}% | {rep['macro_f1']:.3f} | "
            f"{rep['no_face']} | "
            f"{recalls} |"
        )
    table = "\n".join(lines) + "\n"
    write_json(out / "results.json", results)
    write_text(out / "results.md", table)
    return table
