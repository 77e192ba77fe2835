"""ultralytics' process-wide patches must not change how fer-yolo reads images, nor reach the network."""

from __future__ import annotations

import pytest

from fer_yolo.data.images import BadImage, decode_image
from fer_yolo.utils.ultralytics_env import setup_ultralytics


def test_unidentified_image_after_ultralytics_import_is_a_bad_image_not_an_install():
    setup_ultralytics()
    import ultralytics  # noqa: F401  (applies its PIL.Image.open patch)

    with pytest.raises(BadImage, match="not an image"):
        decode_image(b"GIF89a not really an image")
