"""Offline set-up of ultralytics: call `setup_ultralytics()` before importing it anywhere.

ultralytics would otherwise reach the network for fonts (plots), the AMP check weights, hub and
analytics, and write settings into the user's config folder. Here it gets its own config folder
under fer-yolo's cache, YOLO_OFFLINE=1, sync off, a local font so plots never download one, and an
AMP check that compares the model being trained in fp32 and fp16 instead of downloading a model; its
checkpoints (every epoch's and the stripped final ones) are written under temporary names and renamed when
whole.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Iterator
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
    # Every checkpoint ultralytics reads (resume, init, a .pt model) through torch.load(weights_only=True)
    # with its allow-list of module classes: no code stored in a file runs, in training as in inference.
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import cv2

    threads = cv2.getNumThreads()
    from ultralytics import settings  # its import sets OpenCV to one thread, for its data loader workers

    cv2.setNumThreads(threads)  # inference keeps the process's count (--threads); training sets its own
    from ultralytics.utils import USER_CONFIG_DIR

    _install_fonts(USER_CONFIG_DIR)  # where check_font looks: YOLO_CONFIG_DIR/Ultralytics

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
    # The trainer's AMP check downloads yolo26n.pt to compare fp32 and fp16 outputs; compare the model
    # being trained instead.
    import ultralytics.engine.trainer as trainer

    trainer.check_amp = check_amp_offline
    # The trainer writes last.pt and best.pt in place every epoch, and once more at the end (stripped of the
    # optimizer): a kill during a write would leave a truncated file that no resume or user can read.
    if not hasattr(trainer.BaseTrainer.save_model, "__wrapped__"):
        trainer.BaseTrainer.save_model = atomic_checkpoints(trainer.BaseTrainer.save_model)
    if not hasattr(trainer.strip_optimizer, "__wrapped__"):
        trainer.strip_optimizer = atomic_strip(trainer.strip_optimizer)
    # ULTRALYTICS_SAFE_LOAD covers torch_safe_load only: ultralytics' own torch_load defaults to
    # weights_only=False, and the trainer calls it on best.pt and last.pt at the end of every run
    # (strip_optimizer), so a crafted best.pt in a resumed run folder would run its code. Every module that
    # took a reference to it gets the allow-list loader instead.
    import ultralytics.nn.tasks as tasks
    import ultralytics.utils.torch_utils as torch_utils

    for module in (patches, torch_utils, tasks, trainer):
        if hasattr(module, "torch_load"):
            module.torch_load = allow_list_torch_load


@contextlib.contextmanager
def _replaced_if_written(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed over it when the block succeeds and wrote it.

    Unlike `utils.io.atomic_path`, nothing is published when the block writes nothing (the trainer saves
    best.pt only on a better epoch), and the name does not end in .pt (a glob for checkpoints skips it).
    """
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)  # what a killed write left
    yield partial
    if partial.exists():
        os.replace(partial, path)


def atomic_checkpoints(save_model):
    """Wrap a trainer's `save_model` so that its `last` and `best` checkpoints are written under temporary
    names and renamed over the old files once the whole save succeeded."""

    @functools.wraps(save_model)
    def save(self):
        last, best = self.last, self.best
        with _replaced_if_written(last) as self.last, _replaced_if_written(best) as self.best:
            try:
                return save_model(self)
            finally:
                self.last, self.best = last, best

    return save


def atomic_strip(strip_optimizer):
    """Wrap ultralytics' `strip_optimizer(f, s="", updates=None)` so that it writes a temporary file and
    renames it over its target (`s`, or `f` itself) once whole (nothing when `f` is not a checkpoint:
    ultralytics then warns and returns {})."""

    @functools.wraps(strip_optimizer)
    def strip(f, s="", updates=None):
        with _replaced_if_written(Path(s or f)) as partial:
            return strip_optimizer(f, str(partial), updates)

    return strip


def allow_list_torch_load(f, *args, **kwargs):
    """ultralytics' torch_load, always `weights_only=True` with ultralytics' allow-list of model classes.

    Files that need anything else (code, unknown classes) raise `pickle.UnpicklingError`: nothing runs.
    """
    import torch
    from ultralytics.nn.tasks import _SafeLoad

    kwargs["weights_only"] = True
    if isinstance(f, (str, os.PathLike)):
        with _SafeLoad.loading(f):  # registers the model classes the file names, if they are on the list
            return torch.load(f, *args, **kwargs)
    return torch.load(f, *args, **kwargs)


def check_amp_offline(model) -> bool:
    """AMP for CUDA training when fp16 autocast reproduces the model's fp32 outputs (no download).

    Returns False on the CPU, and on CUDA when fp16 gives non-finite or clearly different outputs.
    """
    import copy
    import logging

    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    try:
        m = copy.deepcopy(model).float().eval()
        x = torch.rand(2, 3, 256, 256, device=device)
        with torch.no_grad():
            a = m(x)[0]
            with torch.autocast("cuda", dtype=torch.float16):
                b = m(x)[0].float()
        ok = (
            bool(torch.isfinite(b).all()) and float((a - b).abs().max()) <= 0.02 * float(a.abs().max()) + 1e-3
        )
    except Exception as e:  # any failure: train in fp32 rather than risk NaN losses
        logging.getLogger(__name__).warning("AMP check failed (%s): training in fp32", e)
        return False
    if not ok:
        logging.getLogger(__name__).warning("fp16 outputs differ from fp32 on this GPU: training in fp32")
    return ok
