"""Offline set-up of ultralytics: call `setup_ultralytics()` before importing it anywhere.

ultralytics would otherwise reach the network for fonts (plots), the AMP check weights, hub and
analytics, and write settings into the user's config folder. Here it gets its own config folder
under fer-yolo's cache, YOLO_OFFLINE=1, sync off, and a local font so plots never download one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fer_yolo.utils.paths import cache_dir

#: Font names ultralytics looks for in its config folder before downloading them.
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
#: Logger integrations ultralytics turns on when their packages are importable (some go online).
_INTEGRATIONS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


def _install_fonts(config_dir: Path) -> None:
    # matplotlib ships DejaVuSans; ultralytics only needs *a* TrueType font under these names.
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in FONT_NAMES:
        target = config_dir / name
        if not target.exists() and source.is_file():
            shutil.copyfile(source, target)


def setup_ultralytics() -> None:
    """Point ultralytics at an offline configuration (idempotent; before `import ultralytics`)."""
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics")))
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    _install_fonts(config_dir)
    from ultralytics import settings

    wanted = {key: False for key in _INTEGRATIONS} | {
        "sync": False,
        "weights_dir": str(config_dir / "weights"),
        "runs_dir": str(cache_dir() / "runs"),
        "datasets_dir": str(cache_dir() / "datasets"),
    }
    if any(settings.get(k) != v for k, v in wanted.items()):
        settings.update(wanted)
    # ultralytics replaces PIL.Image.open for the whole process: on the first file Pillow cannot identify,
    # it pip-installs pi-heif (a network call) and raises ModuleNotFoundError where callers expect
    # UnidentifiedImageError. Marking its plugins as registered makes the patch a plain pass-through.
    from ultralytics.utils import patches

    patches._pil_plugins_registered = True
