"""Classification metrics shared by training validation and `fer-yolo eval emotion`."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    idx = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    averaged: int | None = None,
) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    A class never predicted has precision 0; a class absent from y_true has recall 0. The macro average
    runs over the classes that are true or predicted at least once (scikit-learn's default labels): a
    class predicted but absent counts with F1 0, one neither true nor predicted is left out. With `averaged`,
    only the first n classes enter the average (the others, e.g. "no face", are reported, not averaged).

    Example:
        >>> r = classification_report(np.array([0, 0, 1]), np.array([0, 1, 1]), ["a", "b"])
        >>> round(r["accuracy"], 3), round(r["macro_f1"], 3)
        (0.667, 0.667)
        >>> round(classification_report(np.array([0, 0]), np.array([0, 2]), ["a", "b", "c"])["macro_f1"], 3)
        0.333
    """
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    averaged = k if averaged is None else averaged
    present = ((support > 0) | (predicted > 0)) & (np.arange(k) < averaged)  # true or predicted at least once
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": int(cm.sum()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }
