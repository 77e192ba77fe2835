"""fer-yolo as users install it: a wheel holding the package, its data and the shipped weights, run outside
the checkout; a public API imported on first use."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import fer_yolo

REPO = Path(__file__).resolve().parents[1]


def test_public_names_are_imported_on_first_access():
    assert set(fer_yolo.__all__) <= set(dir(fer_yolo))
    for name, module in fer_yolo._EXPORTS.items():
        assert getattr(fer_yolo, name) is getattr(importlib.import_module(module), name)
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        fer_yolo.nope


def test_every_package_folder_is_listed_for_the_wheel():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(d.relative_to(REPO).parts)
        for d in [REPO / "fer_yolo", *(REPO / "fer_yolo").rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(f.is_file() for f in d.iterdir())
    }
    assert set(setuptools["packages"]) == folders | {"fer_yolo.weights"}
    assert setuptools["package-dir"] == {"fer_yolo.weights": "weights"}  # the checkout's weights/ stays put


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command to completion (bounded), failing the test with its output if it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_wheel_installed_elsewhere_predicts_with_its_own_weights(media: Path, tmp_path: Path):
    dist, site, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    dist.mkdir()
    elsewhere.mkdir()
    # setuptools' build/ and egg-info go under dist, not in the checkout (its build/lib may hold stale files)
    (dist / "setup.cfg").write_text(
        f"[build]\nbuild_base = {dist / 'build'}\n[egg_info]\negg_base = {dist}\n"
    )
    build_env = os.environ | {"DIST_EXTRA_CONFIG": str(dist / "setup.cfg")}
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(dist)], cwd=REPO, env=build_env)
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [
        f"fer_yolo/weights/{p.name}" for p in (REPO / "weights").glob("*") if p.suffix in (".pt", ".onnx")
    ]
    modules = [p.relative_to(REPO).as_posix() for p in (REPO / "fer_yolo").rglob("*.py")]
    assert shipped and set(shipped + modules + ["fer_yolo/cfg/default.yaml"]) <= names
    run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)])

    env = {k: v for k, v in os.environ.items() if k != "FER_YOLO_WEIGHTS"}  # the wheel's own weights
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    where = run([sys.executable, "-c", "import fer_yolo; print(fer_yolo.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.stdout.strip()) == site / "fer_yolo" / "__init__.py"  # the installed copy, not REPO
    photo = media / "face_recognition/obama.jpg"
    cli = "from fer_yolo.cli import main; raise SystemExit(main())"
    predict = [sys.executable, "-c", cli, "predict", str(photo), "--project", str(tmp_path / "out")]
    result = run(predict, cwd=elsewhere, env=env)
    assert "Traceback" not in result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and len(rows[0]["faces"]) == 1
    weights = json.loads((run_dir / "report.json").read_text())["weights"]
    assert all(Path(w).parent == site / "fer_yolo" / "weights" for w in weights.values()), weights
