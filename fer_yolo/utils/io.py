"""Atomic file writes, run folders and safe checkpoint I/O."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from fer_yolo.errors import WeightsError

#: How a Git LFS pointer file starts: a clone without `git lfs pull` has these in place of the weights.
_LFS_POINTER = b"version https://git-lfs"

_UMASK = os.umask(0)
os.umask(_UMASK)
_TEMP_MARK = ".tmp"  # atomic_path's temporary files: .<name>.<random>.tmp<suffix>


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    A crash or Ctrl-C leaves either the old file or none, never a half-written one.

    Example:
        >>> with atomic_path("out.json") as tmp:  # doctest: +SKIP
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:  # inside the try: a Ctrl-C after mkstemp returns still removes it (within it: remove_temporaries)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_MARK + path.suffix, dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def remove_temporaries(folder: str | os.PathLike) -> int:
    """Delete what atomic writes left under `folder` when their process was killed (or Ctrl-C landed inside
    `tempfile.mkstemp`): hidden `.<name>.<random>.tmp*` files and folders; returns how many. Call it before
    resuming work there.
    """
    stale = list(Path(folder).rglob(f".*.*{_TEMP_MARK}*"))
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)


def file_digest(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in 1 MB chunks (what an export records of its weights, and what
    keys a cache by the weights it was made with)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON objects of a JSON Lines file, one per line; a line cut off by a crash is passed over."""
    rows = []
    path = Path(path)
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return [r for r in rows if isinstance(r, dict)]


@contextlib.contextmanager
def append_lines(path: str | os.PathLike) -> Iterator[Any]:
    """Open a JSON Lines log for appending; a last line cut off by a crash is ended first, so the next
    record starts on a line of its own."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
    with path.open("a") as f:
        if torn:
            f.write("\n")
        yield f


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Save a checkpoint dict (tensors, numbers, strings, lists, dicts; in a packed detector, its ultralytics
    model) atomically. The same dict gives the same bytes: torch names the archive inside after the file it is
    given (here a file object, not the temporary name), so a weight file packed again keeps its sha256 and the
    int8 export that records it."""
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(checkpoint, f)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with `torch.load(weights_only=True)`: no code in the file ever runs.

    Raises:
        WeightsError: The file is missing or is not a plain-data checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}", "pass --weights with an existing file")
    hint = "pass a file written by `fer-yolo train`"
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's message runs to paragraphs, some advising an unsafe load
        refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        if refused:
            raise WeightsError(
                f"cannot load {path} as a fer-yolo checkpoint: it holds Python objects ({refused[1]}: a "
                "detector checkpoint, or a file another program wrote?), which fer-yolo never unpickles",
                hint,
            ) from e
        with path.open("rb") as f:
            lfs = f.read(len(_LFS_POINTER)) == _LFS_POINTER
        raise WeightsError(
            f"cannot load {path} as a fer-yolo checkpoint: it is damaged or not a checkpoint",
            "it is a Git LFS pointer, not the weights: run `git lfs pull`" if lfs else hint,
        ) from e
    except Exception as e:  # torch raises several other types for foreign or corrupt files
        lines = str(e).strip().splitlines()
        reason = f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
        raise WeightsError(f"cannot load {path} as a fer-yolo checkpoint: {reason}", hint) from e


def increment_dir(parent: str | os.PathLike, name: str) -> Path:
    """Create and return parent/name, or parent/name2, name3, ... if it already exists.

    The folder is claimed by creating it, so two runs started at once never share one.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        candidate = parent / (name if n == 1 else f"{name}{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
