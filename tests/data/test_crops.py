"""Reading crop datasets: FER2013's official split from file names, and leak removal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_yolo.data.crops import drop_leaks, load_crops


def test_fer2013_layout_splits_by_file_name(fer2013: Path):
    val = load_crops(fer2013, "val")
    test = load_crops(fer2013, "test")
    assert len(val) == len(test) == 3589
    assert all(Path(p).name.startswith("PublicTest_") for p in val.paths)
    assert all(Path(p).name.startswith("PrivateTest_") for p in test.paths)
    assert val.images.shape == (3589, 48, 48, 1) and val.images.dtype == np.uint8
    assert val.source_size == 48 and val.subset(np.arange(3)).source_size == 48


def test_drop_leaks_removes_copies_of_held_out_and_blank_crops(fer2013: Path):
    test = load_crops(fer2013, "test")
    train = test.subset(np.arange(5))
    train.images[0] = 0  # blank
    cleaned, removed = drop_leaks(train, test.subset(np.arange(1, 3)))
    assert removed == 3 and cleaned.paths == [test.paths[3], test.paths[4]]
