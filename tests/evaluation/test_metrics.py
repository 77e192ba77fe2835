"""Classification metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from fer_yolo.evaluation.metrics import classification_report, confusion_matrix


def test_report_matches_hand_computation():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    # a: P 1, R 2/3, F1 0.8; b: P 1/2, R 1/2, F1 1/2; c: P 1/2, R 1, F1 2/3
    assert r["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert r["per_class"]["c"]["precision"] == pytest.approx(0.5)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_macro_f1_averages_the_classes_true_or_predicted_as_scikit_learn_does():
    r = classification_report(np.array([0, 1]), np.array([0, 2]), ["a", "b", "c", "d"])
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["macro_f1"] == pytest.approx(1 / 3)  # a: 1.0, b: 0.0, c (predicted, absent): 0.0; d left out


def test_confusion_matrix_counts_every_pair():
    assert confusion_matrix(np.array([1, 1]), np.array([0, 1]), 2).tolist() == [[0, 0], [1, 1]]
