"""Face crops and test-time-augmentation views, checked on hand-made images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fer_yolo.data.crops import is_grey
from fer_yolo.emotion.preprocess import Preprocess, resize_face, square_crop, tta_views


def test_square_crop_is_centred_and_fills_outside_by_replicating_the_border():
    image = np.arange(100 * 200, dtype=np.int32).reshape(100, 200) % 251
    image = image.astype(np.uint8)
    crop = square_crop(image, np.array([50, 40, 90, 60]), margin=0.25)  # 40x20 box -> side 60
    assert crop.shape == (60, 60)
    assert np.array_equal(crop, image[20:80, 40:100])
    edge = square_crop(image, np.array([0, 0, 20, 20]), margin=0.5)  # 40x40 square centred on (10, 10)
    assert edge.shape == (40, 40)
    assert np.array_equal(edge[10:, 10:], image[:30, :30])
    assert np.array_equal(edge[:10, 10:], np.repeat(image[:1, :30], 10, axis=0))  # rows above: top row copied
    assert square_crop(image, np.array([500, 500, 520, 520]), 0.1).shape == (24, 24)  # off-frame box: blank


def test_tta_views():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    assert len(tta_views(x, "none")) == 1
    plain, mirror = tta_views(x, "flip")
    assert torch.equal(mirror, x.flip(3))
    views = tta_views(x, "multicrop", zoom=1.25)  # 10x10 zoom: 5 crops + whole, each mirrored
    assert len(views) == 12 and all(v.shape == x.shape for v in views)
    assert torch.equal(views[6], x.flip(3)) and torch.equal(views[7], views[1].flip(3))
    big = torch.nn.functional.interpolate(x, size=(10, 10), mode="bilinear", align_corners=False)
    crops = [big[..., 1:9, 1:9], big[..., :8, :8], big[..., :8, 2:], big[..., 2:, :8], big[..., 2:, 2:]]
    for view, crop in zip(views[1:6], crops):  # centre, then the four corners
        assert torch.equal(view, crop)
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views(x, "ten-crop")


def test_colour_faces_reach_a_grey_trained_network_grey():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (40, 30, 3), np.uint8)  # BGR, not grey
    grey = Preprocess(8, 3).prepare_crops([colour])
    assert is_grey(grey) and not is_grey(colour[None])
    expected = cv2.resize(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), (8, 8), interpolation=cv2.INTER_AREA)
    assert np.array_equal(grey[0, ..., 1], expected)
    rgb = Preprocess(8, 3, grey=False).prepare_crops([colour])[0]  # a network trained on colour crops
    assert np.array_equal(rgb, cv2.resize(colour, (8, 8), interpolation=cv2.INTER_AREA)[..., ::-1])
    assert Preprocess.from_dict({"input_size": 8, "in_chans": 3, "mean": [0] * 3, "std": [1] * 3}).grey
    assert not Preprocess.from_dict(Preprocess(8, 3, grey=False).to_dict()).grey


def test_sharp_faces_reach_the_network_as_sharp_as_its_training_faces(fer2013: Path):
    face = cv2.imread(str(next((fer2013 / "test/happy").glob("PrivateTest_*.jpg"))), cv2.IMREAD_GRAYSCALE)
    pre = Preprocess(96, 1, source_size=48)
    trained_on = cv2.resize(face, (96, 96), interpolation=cv2.INTER_LINEAR)  # how the trainer reads it
    assert np.array_equal(pre.prepare_crops([face])[0, ..., 0], trained_on)
    sharp = cv2.resize(face, (240, 240), interpolation=cv2.INTER_CUBIC)  # the same face, seen closer
    seen = pre.prepare_crops([sharp])[0, ..., 0].astype(int)
    direct = Preprocess(96, 1).prepare_crops([sharp])[0, ..., 0].astype(int)
    assert np.abs(seen - trained_on).mean() < 0.5 * np.abs(direct - trained_on).mean()
    small = face[:30, :30]  # smaller than the training faces: brought up directly
    up = cv2.resize(small, (96, 96), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(resize_face(small, 96, 48), up)
    assert Preprocess.from_dict({"input_size": 96, "in_chans": 1, "mean": [0], "std": [1]}).source_size == 48
    assert Preprocess.from_dict(Preprocess(96, 1, source_size=0).to_dict()).source_size == 0
