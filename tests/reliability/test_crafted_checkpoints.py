"""A weight file that runs code when unpickled runs nothing on any path reading a .pt (issue 29, probe 1).

Each path gets a file whose pickle touches a marker (`CodeRunningPayload`); every one must refuse it with a
clear error and leave no marker: predict/stream, eval (both), export, both trainers' init and resume, and
ship_weights. The resume probe is the one that found the hole: a real interrupted detector run whose best.pt
is replaced after last.pt was made to keep it (ultralytics' trainer reads best.pt when the run ends).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import torch

from fer_yolo.cli import main
from fer_yolo.errors import WeightsError
from tests.helpers.payload import CodeRunningPayload

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """(a .pt whose unpickling touches the marker, the marker)."""
    marker, bad = tmp_path / "code_ran", tmp_path / "evil.pt"
    torch.save({"model": CodeRunningPayload(marker), "state_dict": CodeRunningPayload(marker)}, bad)
    return bad, marker


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "{photo}", "--weights", "{evil}", "--project", "{out}"],
        ["predict", "{photo}", "--emotion-weights", "{evil}", "--project", "{out}"],
        ["eval", "emotion", "--weights", "{evil}", "--out", "{out}"],
        ["eval", "detector", "--weights", "{evil}", "--limit", "1", "--out", "{out}"],
        ["export", "--weights", "{evil}", "--out", "{out}"],
        [
            "train",
            "emotion",
            "--set",
            "train_emotion.init={evil}",
            "--set",
            "train_emotion.data={data}/fer2013",
        ],
        ["train", "emotion", "--resume", "{evil}"],
        ["train", "detector", "--set", "train_detector.init={evil}", "--set", "train_detector.data={yaml}"],
        ["train", "detector", "--resume", "{evil}"],
    ],
    ids=lambda a: " ".join(x for x in a[:3] if not x.startswith("{")),
)
def test_cli_paths_refuse_a_code_running_checkpoint(
    argv, evil, media: Path, data_root: Path, tmp_path: Path, capsys
):
    bad, marker = evil
    fill = {
        "evil": str(bad),
        "photo": str(media / "face_recognition/obama.jpg"),
        "out": str(tmp_path / "out"),
        "data": str(data_root),
        "yaml": str(data_root / "widerface/data.yaml"),
    }
    code = main([a.format(**fill) for a in argv])
    assert code != 0 and f"cannot load {bad}" in capsys.readouterr().err  # a clear error naming the file
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["detector", "emotion"])
def test_ship_weights_refuses_a_code_running_checkpoint(kind: str, evil, tmp_path: Path, monkeypatch):
    bad, marker = evil
    monkeypatch.setattr(sys, "argv", ["ship_weights.py", kind, str(bad), str(tmp_path / "out.pt")])
    with pytest.raises(WeightsError):
        runpy.run_path(str(REPO / "tools/ship_weights.py"), run_name="__main__")
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_ultralytics_own_loader_reads_no_code(evil):
    """At the cause: the trainer's strip_optimizer (run on best.pt and last.pt at every run's end)."""
    from fer_yolo.utils.ultralytics_env import setup_ultralytics

    setup_ultralytics()
    from ultralytics.utils.torch_utils import strip_optimizer

    bad, marker = evil
    assert strip_optimizer(bad) == {}  # refused ("not a valid Ultralytics model"), nothing ran
    assert not marker.exists()


@pytest.mark.slow
def test_resuming_a_run_whose_best_pt_was_replaced_runs_no_code(
    tiny_wider_yaml: Path, tmp_path: Path, monkeypatch
):
    from ultralytics.engine.trainer import BaseTrainer

    from fer_yolo.train.detector import train_detector
    from tests.detectors.test_yolo import tiny_config

    original = BaseTrainer._do_train

    def stop_after_first_epoch(self, *args, **kwargs):
        def interrupt(trainer):
            raise KeyboardInterrupt

        self.add_callback("on_fit_epoch_end", interrupt)
        return original(self, *args, **kwargs)

    cfg = tiny_config(tiny_wider_yaml, tmp_path, epochs=2)
    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(BaseTrainer, "_do_train", stop_after_first_epoch)
        train_detector(cfg)
    run = tmp_path / "runs/t"
    last = torch.load(run / "weights/last.pt", weights_only=False)  # the test's own file
    last["best_fitness"] = 1e9  # best.pt is then never rewritten before the trainer reads it
    torch.save(last, run / "weights/last.pt")
    marker = tmp_path / "code_ran"
    torch.save({"model": CodeRunningPayload(marker)}, run / "weights/best.pt")
    with pytest.raises(WeightsError, match="best.pt"):
        train_detector(cfg, resume=run)
    assert not marker.exists()
