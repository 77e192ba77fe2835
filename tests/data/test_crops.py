"""Reading crop datasets: FER2013's official split from file names, leak removal, unreadable splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_yolo.data.crops import drop_leaks, load_crops
from fer_yolo.errors import DatasetError, MissingSplit


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


def test_a_split_whose_images_are_all_unreadable_is_an_error_not_an_empty_set(fer2013: Path, tmp_path: Path):
    for k, src in enumerate(sorted((fer2013 / "train" / "happy").iterdir())[:3]):
        (tmp_path / "val" / "happy").mkdir(parents=True, exist_ok=True)
        pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"  # not pulled
        (tmp_path / "val" / "happy" / src.name).write_text(pointer)
        if k == 0:
            (tmp_path / "train" / "happy").mkdir(parents=True)
            shutil.copy(src, tmp_path / "train" / "happy")
    with pytest.raises(DatasetError, match="none of its 3 images can be read"):
        load_crops(tmp_path, "val")
    assert len(load_crops(tmp_path, "train")) == 1


def test_a_missing_split_is_told_apart_from_a_split_folder_without_images(fer2013: Path, tmp_path: Path):
    fer = tmp_path / "fer"  # FER2013's layout, its test/ folder holding PublicTest images only
    for split, prefix in (("train", "Training_"), ("test", "PublicTest_")):
        (fer / split / "happy").mkdir(parents=True)
        shutil.copy(min((fer2013 / split / "happy").glob(f"{prefix}*")), fer / split / "happy")
    assert len(load_crops(fer, "val")) == 1
    with pytest.raises(MissingSplit):  # no PrivateTest: a dataset without that split
        load_crops(fer, "test")
    own = tmp_path / "own"
    (own / "train/happy").mkdir(parents=True)
    shutil.copy(min((fer2013 / "train/happy").iterdir()), own / "train/happy")
    (own / "val/joyful").mkdir(parents=True)  # a val folder whose images are in no emotion's folder
    shutil.copy(min((fer2013 / "train/happy").iterdir()), own / "val/joyful")
    with pytest.raises(DatasetError, match="no images found") as error:
        load_crops(own, "val")
    assert not isinstance(error.value, MissingSplit)  # an error, not a split to leave out
