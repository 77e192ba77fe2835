"""ultralytics' process-wide patches must not change how fer-yolo reads images, nor reach the network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fer_yolo.data.images import BadImage, decode_image
from fer_yolo.utils.ultralytics_env import FONT_NAMES, setup_ultralytics

REPO = Path(__file__).resolve().parents[1]


def test_unidentified_image_after_ultralytics_import_is_a_bad_image_not_an_install():
    setup_ultralytics()
    import ultralytics  # noqa: F401  (applies its PIL.Image.open patch)

    with pytest.raises(BadImage, match="not an image"):
        decode_image(b"GIF89a not really an image")


def test_importing_ultralytics_leaves_opencvs_thread_count():
    # ultralytics' import sets OpenCV to one thread for the whole process; in a fresh process, as the CLI is
    code = "import cv2; cv2.setNumThreads(3); from fer_yolo.utils.ultralytics_env import setup_ultralytics; "
    code += "setup_ultralytics(); import ultralytics; print(cv2.getNumThreads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "3"


def test_trainer_amp_check_is_offline_and_off_on_the_cpu():
    setup_ultralytics()
    import ultralytics.engine.trainer as trainer
    from ultralytics.nn.tasks import DetectionModel

    from fer_yolo.utils.ultralytics_env import check_amp_offline

    assert trainer.check_amp is check_amp_offline
    assert check_amp_offline(DetectionModel("yolo11n.yaml", nc=1, verbose=False)) is False  # CPU: no AMP


@pytest.mark.gpu
def test_amp_check_accepts_fp16_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    setup_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    from fer_yolo.utils.ultralytics_env import check_amp_offline

    assert check_amp_offline(DetectionModel("yolo11n.yaml", nc=1, verbose=False).cuda()) is True


def test_plot_fonts_are_found_locally(no_network: list):
    setup_ultralytics()
    from ultralytics.utils.checks import check_font

    for name in FONT_NAMES:  # ultralytics would download them for its plots' labels
        assert Path(check_font(name)).is_file()
    assert no_network == []


def test_a_save_killed_midway_keeps_the_previous_checkpoints(tmp_path: Path):
    setup_ultralytics()
    import ultralytics.engine.trainer as trainer

    from fer_yolo.utils.ultralytics_env import atomic_checkpoints

    assert hasattr(trainer.BaseTrainer.save_model, "__wrapped__")  # the trainer's own save is wrapped

    class Run:  # what save_model uses of a trainer: it writes last, then best
        last, best, fail = tmp_path / "last.pt", tmp_path / "best.pt", True

        def save_model(self):
            self.last.write_bytes(b"epoch 2")
            self.best.write_bytes(b"epoch")  # killed in the middle of best.pt
            if self.fail:
                raise KeyboardInterrupt
            self.best.write_bytes(b"epoch 2")
            return True

    Run.last.write_bytes(b"epoch 1")
    Run.best.write_bytes(b"epoch 1")
    save, run = atomic_checkpoints(Run.save_model), Run()
    with pytest.raises(KeyboardInterrupt):
        save(run)
    assert (Run.last.read_bytes(), Run.best.read_bytes()) == (b"epoch 1", b"epoch 1")
    assert (run.last, run.best) == (Run.last, Run.best)
    run.fail = False
    assert save(run) is True
    assert (Run.last.read_bytes(), Run.best.read_bytes()) == (b"epoch 2", b"epoch 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # nothing partial left


def test_the_final_strip_is_written_whole_or_not_at_all(tmp_path: Path):
    setup_ultralytics()
    import ultralytics.engine.trainer as trainer

    from fer_yolo.utils.ultralytics_env import atomic_strip

    assert hasattr(trainer.strip_optimizer, "__wrapped__")  # what the trainer calls at the end of a run
    best = tmp_path / "best.pt"
    best.write_bytes(b"trained")

    def killed(f, s="", updates=None):
        Path(s or f).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_strip(killed)(best)
    assert best.read_bytes() == b"trained"
    assert atomic_strip(trainer.strip_optimizer.__wrapped__)(best) == {}  # not a checkpoint: left as it is
    assert best.read_bytes() == b"trained"
