"""Ray stays optional: the CLI and predict never import it, and batch without it says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_and_pipeline_do_not_import_ray():
    result = _python(
        "import sys, fer_yolo.cli, fer_yolo.runner, fer_yolo.batch.units, fer_yolo.batch.merge\n"
        "print('ray' in sys.modules, 'pyarrow' in sys.modules)"
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_batch_without_ray_names_the_extra(tmp_path: Path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    code = (
        "import sys; sys.modules['ray'] = None  # as if not installed: `import ray` raises ImportError\n"
        "from fer_yolo.cli import main\n"
        f"sys.exit(main(['batch', {str(clip)!r}, '-o', {str(tmp_path / 'out')!r}, '-q']))"
    )
    result = _python(code)
    assert result.returncode == 2, result.stderr
    assert "error: fer-yolo batch runs on Ray, which is not installed" in result.stderr
    assert 'pip install -e ".[cluster]"' in result.stderr and "Traceback" not in result.stderr


def test_batch_refuses_an_address_where_no_cluster_answers(tmp_path: Path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "fer_yolo.cli", "batch", str(clip), "-o", str(tmp_path / "out")]
        + ["--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2 and "error: no Ray cluster answers at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_ray_usage_statistics_are_off_even_where_the_environment_turns_them_on():
    pytest.importorskip("ray")
    # left on, Ray asks the cloud metadata address (169.254.169.254) which cloud it runs in
    code = (
        "import os; os.environ['RAY_USAGE_STATS_ENABLED'] = '1'\n"
        "from fer_yolo.batch.cluster import import_ray\n"
        "import_ray()\n"
        "from ray._common.usage.usage_lib import usage_stats_enabled\n"
        "print(usage_stats_enabled())"
    )
    result = _python(code)
    assert result.stdout.split() == ["False"], result.stderr
