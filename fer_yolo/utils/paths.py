"""Where fer-yolo finds data and keeps its caches, configurable by environment variables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from fer_yolo.errors import DatasetError

#: The repository checkout (parent of the package); in an installed copy, the folder holding fer_yolo/.
REPO_ROOT = Path(__file__).resolve().parents[2]


def absolute_path(path: str) -> str:
    """`path` with ~ expanded, made absolute ('' stays ''): a run's saved settings hold in any directory."""
    return str(Path(path).expanduser().resolve()) if path else path


def cache_dir() -> Path:
    """Runs, checkpoints and tool caches: $FER_YOLO_CACHE or ~/.cache/fer-yolo."""
    return Path(os.environ.get("FER_YOLO_CACHE", "~/.cache/fer-yolo")).expanduser()


def data_root(required: bool = True) -> Path | None:
    """The shared research data: $FER_YOLO_DATA, else ../shared/data beside the checkout.

    Raises:
        DatasetError: `required` and the folder does not exist.
    """
    env = os.environ.get("FER_YOLO_DATA")
    root = Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
    if root.is_dir():
        return root
    if required:
        raise DatasetError(
            f"data folder not found: {root}",
            "set FER_YOLO_DATA to the folder holding fer2013/, widerface/ ...",
        )
    return None


#: Shipped weight files (in the folders of `weights_folders`), by role; model cards beside them.
SHIPPED_WEIGHTS: dict[str, str] = {"detector": "face_yolo11n.pt", "emotion": "emotion_resnet34.pt"}
#: What ONNX Runtime runs instead by default: the same weights exported as int8 (`fer-yolo export --int8`).
SHIPPED_INT8: dict[str, str] = {"emotion": "emotion_resnet34_int8.onnx"}


def weights_folders() -> list[Path]:
    """Where shipped weights are looked for, in order: $FER_YOLO_WEIGHTS (if set), the package's own
    (fer_yolo/weights of an installed wheel; in a checkout, editable installs included, its top-level
    weights/), then <cache_dir()>/weights."""
    package, checkout = Path(str(resources.files("fer_yolo"))) / "weights", REPO_ROOT / "weights"
    shipped = checkout if checkout.is_dir() and not package.is_dir() else package
    folders = [shipped, cache_dir() / "weights"]
    env = os.environ.get("FER_YOLO_WEIGHTS")
    return [Path(env).expanduser(), *folders] if env else folders


def default_weights(role: str, onnx: bool = False) -> Path:
    """Path of the shipped weights for `role` (detector | emotion), from the first of `weights_folders`
    that holds them (none does: the path in the first, which the loaders' "not found" errors name).

    With `onnx` (inference by ONNX Runtime, on the CPU), the role's int8 export where one is shipped beside
    them.
    """
    folders = weights_folders()
    folder = next((f for f in folders if (f / SHIPPED_WEIGHTS[role]).is_file()), folders[0])
    if onnx and role in SHIPPED_INT8 and (folder / SHIPPED_INT8[role]).is_file():
        return folder / SHIPPED_INT8[role]
    return folder / SHIPPED_WEIGHTS[role]


def missing_weights_hint(role: str, flag: str, path: Path) -> str:
    """The hint of a "weights not found" error for `role` (detector | emotion): where a relative `path` was
    looked for, and where the shipped file is."""
    looked = "" if path.is_absolute() else f"{path} was looked for under {Path.cwd()}; "
    shipped = default_weights(role)
    found = f"the shipped {role} weights are {shipped}" if shipped.is_file() else "none is shipped here"
    return f"pass {flag} with an existing file ({looked}{found}), or train them with `fer-yolo train {role}`"


def weights_names(weights: Sequence[str | Path]) -> list[str]:
    """A distinct name per weights file: its stem, prefixed by its (run) folder where stems repeat.

    Example:
        >>> weights_names(["runs/a/weights/best.pt", "runs/b/weights/best.pt", "weights/x.pt"])
        ['a_best', 'b_best', 'x']
    """
    paths = [Path(w) for w in weights]
    stems = [p.stem for p in paths]
    names = []
    for p in paths:
        folder = (p.parent.parent if p.parent.name == "weights" else p.parent).name
        name = f"{folder}_{p.stem}" if stems.count(p.stem) > 1 and folder else p.stem
        names.append(name if name not in names else f"{name}_{len(names)}")
    return names
