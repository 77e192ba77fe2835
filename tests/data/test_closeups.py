"""Zoom windows: the face is the asked share of the window, boxes carried exactly, windows stay inside."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_yolo.data.closeups import ZoomWindow, carry_boxes, fit_inside, zoom_crop, zoom_window


@pytest.mark.parametrize("fraction", [0.3, 0.5, 1.0])
@pytest.mark.parametrize("aspect", [1.0, 16 / 9])
def test_face_is_the_asked_share_of_the_window(fraction: float, aspect: float):
    face = np.array([100, 200, 160, 280])  # 60 x 80
    window = zoom_window(face, fraction, aspect)
    w, h = window.wh
    assert h == pytest.approx(80 / fraction, abs=1)
    assert w == pytest.approx(h * aspect, abs=1)
    assert (window.x1 + window.x2) / 2 == pytest.approx(130, abs=1)
    assert (window.y1 + window.y2) / 2 == pytest.approx(240, abs=1)


@pytest.mark.parametrize("shift", [(-1.0, -1.0), (1.0, 0.5)])
def test_a_shifted_window_still_holds_the_face(shift):
    face = np.array([100, 200, 160, 280])
    window = zoom_window(face, 0.4, 4 / 3, shift)
    assert window.x1 <= 100 and window.y1 <= 200 and window.x2 >= 160 and window.y2 >= 280
    moved = zoom_window(face, 0.4, 4 / 3)
    assert (window.x1, window.y1) != (moved.x1, moved.y1)


def test_fit_inside_moves_then_cuts():
    assert fit_inside(ZoomWindow(-20, 10, 80, 110), (200, 200)) == ZoomWindow(0, 10, 100, 110)
    assert fit_inside(ZoomWindow(150, 150, 250, 250), (200, 200)) == ZoomWindow(100, 100, 200, 200)
    assert fit_inside(ZoomWindow(-50, -50, 350, 150), (200, 100)) == ZoomWindow(0, 0, 200, 100)


def test_carried_boxes_are_clipped_and_mostly_hidden_ones_dropped():
    window = ZoomWindow(100, 100, 200, 200)
    boxes = np.array([[120, 120, 150, 150], [180, 150, 220, 190], [190, 100, 230, 140], [0, 0, 50, 50]])
    carried = carry_boxes(boxes, window)
    np.testing.assert_allclose(carried, [[20, 20, 50, 50], [80, 50, 100, 90]])  # 50% inside kept, 25% not


def test_zoom_crop_of_a_real_photo(media):
    image = cv2.imread(str(media / "face_recognition" / "obama.jpg"))
    face = np.array([372.0, 87, 607, 422])
    window = fit_inside(zoom_window(face, 1.0), image.shape[1::-1])
    assert window == ZoomWindow(322, 87, 657, 422)  # square, as high as the 235 x 335 px face
    crop, boxes = zoom_crop(image, face[None], window, 720)
    assert crop.shape == (720, 720, 3)
    np.testing.assert_allclose(boxes, [[50 * 720 / 335, 0, 285 * 720 / 335, 720]], atol=0.01)
    expected = cv2.resize(image[87:422, 322:657], (720, 720), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crop, expected)
