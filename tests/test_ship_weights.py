"""tools/ship_weights.py: packing a run's weights for weights/, and the int8 export left beside them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from fer_yolo.utils.paths import REPO_ROOT, default_weights


def ship(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools/ship_weights.py"), *args], capture_output=True, text=True
    )


def test_shipping_an_emotion_head_flags_the_int8_export_it_replaces(emotion_weights: Path, tmp_path: Path):
    dst = tmp_path / emotion_weights.name
    alone = ship("emotion", str(emotion_weights), str(dst))
    assert alone.returncode == 0 and "wrote" in alone.stdout and "export of another" not in alone.stdout
    packed = dst.read_bytes()
    state = torch.load(dst, weights_only=True)["state_dict"]
    assert all(v.dtype != torch.float32 for v in state.values())  # fp16 (and integer counters)
    int8 = default_weights("emotion", onnx=True)  # the shipped export, of the shipped .pt, not of dst
    (tmp_path / int8.name).write_bytes(int8.read_bytes())
    again = ship("emotion", str(emotion_weights), str(dst))
    assert again.returncode == 0 and f"{tmp_path / int8.name} is an export of another file" in again.stdout
    assert dst.read_bytes() == packed  # packed again, the same bytes: an export of the first still matches
