"""Checks that annotated images really carry the boxes they report."""

import numpy as np


def assert_boxes_drawn(annotated: np.ndarray, original: np.ndarray, boxes: np.ndarray) -> None:
    """Each box's left, right and bottom edges differ strongly from the original; the image overall does not.

    The top edge is left out (the label sits on it). A re-encoded JPEG alone differs by a few levels per
    pixel: a drawn edge must differ by more than 40 (sum over BGR) on average and 5x the image's median.
    """
    assert annotated.shape == original.shape
    diff = np.abs(annotated.astype(np.int32) - original.astype(np.int32)).sum(2)
    h, w = diff.shape
    background = np.median(diff)
    for x1, y1, x2, y2 in np.asarray(boxes, float).astype(int):  # supervision draws at the int coordinates
        x1, x2 = np.clip([x1, x2], 1, w - 2)
        y1, y2 = np.clip([y1, y2], 1, h - 2)
        # Each edge: the line, and one pixel either side of it.
        left, right = diff[y1:y2, x1 - 1 : x1 + 2].max(1), diff[y1:y2, x2 - 1 : x2 + 2].max(1)
        bottom = diff[y2 - 1 : y2 + 2, x1:x2].max(0)
        edge = np.concatenate([left, right, bottom]).mean()
        assert edge > 40 and edge > 5 * background, (edge, background, (x1, y1, x2, y2))
