"""The ONNX Runtime backend: fer-yolo's networks exported once into the cache, and the sessions the CPU
pipeline runs them in (the `fer-yolo export` command is export.py, on top of this).

On the CPU, ONNX Runtime runs both networks much faster than PyTorch eager (2-core AVX2 machine: YOLO11n
at 320x256 12 vs 24 ms; MobileNetV2 on 7 faces at 96 px 8 vs 29 ms; outputs equal to 1e-4), so the
detector and the emotion head (backend "auto") export their weights once into fer-yolo's cache and run
that. Exports have a dynamic batch (and, for the detector, image size). A network exported by `fer-yolo
export` (fp32 or `--int8`) also runs as it is, wherever a weight file of its kind is accepted (emotion
heads through OnnxModule), and a shipped int8 export listed in SHIPPED_INT8 is what ONNX Runtime runs by
default (`shipped_weights`).
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from fer_yolo.config import CHOICES, default_of
from fer_yolo.errors import ConfigError, WeightsError
from fer_yolo.utils.device import SATURATING_ISAS, int8_isa
from fer_yolo.utils.io import atomic_path, file_digest
from fer_yolo.utils.paths import cache_dir, default_weights

LOGGER = logging.getLogger(__name__)
#: What `fer-yolo export --int8` records in a file's `quantization` metadata since its weights use 7 bits.
SEVEN_BIT_WEIGHTS = "7-bit weights"
#: Version of the exports' layout (input/output names): part of the cache key.
_LAYOUT = 2
#: Inference backends: auto (ONNX Runtime on the CPU when installed, PyTorch on CUDA) | torch | onnx.
BACKENDS = CHOICES["pipeline.backend"]


def export_onnx(
    model: torch.nn.Module, out: str | Path, example: torch.Tensor, dynamic: dict, opset: int | None = None
) -> Path:
    """Write `model` (fp32, eval mode) as ONNX with input "input" and output "output", atomically.

    Args:
        model: The network.
        out: Output .onnx file.
        example: An input of the right rank and channels.
        dynamic: Dynamic axes by name, e.g. {"input": {0: "batch"}, "output": {0: "batch"}}.
        opset: ONNX opset (None: `export.opset`).
    """
    net = copy.deepcopy(model).float().eval().cpu()  # a model on CUDA (backend onnx there) exports too
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(
            net,
            example.float().cpu(),
            str(tmp),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes=dynamic,
            opset_version=default_of(opset, "export.opset"),
            dynamo=False,
        )
    return Path(out)


def export_detector_onnx(model: torch.nn.Module, out: str | Path, opset: int | None = None) -> Path:
    """An ultralytics detection model as ONNX: (n, 3, H, W) in, decoded (n, 4 + classes, anchors) out, at
    `opset` (None: `export.opset`)."""
    net = copy.deepcopy(model)
    for module in net.modules():  # the Detect head returns the decoded predictions only
        if hasattr(module, "export"):
            module.export = True
        if hasattr(module, "format"):
            module.format = "onnx"
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "anchors"}}
    return export_onnx(net, out, torch.zeros(1, 3, 256, 320), dynamic, opset)


def cached_onnx(weights: str | Path, export: Callable[[Path], object]) -> Path:
    """The ONNX export of `weights` in <cache>/onnx (keyed by the file's content), made on first use."""
    digest = file_digest(weights)[:16]
    path = cache_dir() / "onnx" / f"{Path(weights).stem}-{digest}-v{_LAYOUT}.onnx"
    if not path.is_file():
        export(path)
    return path


def use_onnx(backend: str, device: torch.device) -> bool:
    """Resolve a backend setting: ONNX Runtime for "onnx", and for "auto" on the CPU when it is installed.

    Raises:
        ConfigError: `backend` is not one of BACKENDS.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", f"choose one of {BACKENDS}")
    if backend == "auto":
        return device.type == "cpu" and importlib.util.find_spec("onnxruntime") is not None
    return backend == "onnx"


def onnx_session(model: Path | bytes, threads: int):
    """A CPU ONNX Runtime session of an .onnx file (or its serialized bytes), set up to share few cores.

    Args:
        model: The .onnx file, or a model serialized in memory (e.g. one whose input was made dynamic).
        threads: Intra-op threads (at least 1).

    Returns:
        An `onnxruntime.InferenceSession` on the CPU execution provider.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    # No spin-waiting after a run: the detector's and the emotion head's sessions (and PyTorch) take
    # turns on the same cores, and a spinning pool starves the next one (2x slower end to end here).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxNet:
    """A CPU ONNX Runtime session called like the network: float32 array in, torch tensor out."""

    def __init__(self, path: Path, threads: int) -> None:
        self.session = onnx_session(path, threads)

    def __call__(self, x) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {"input": x})[0])


class OnnxModule(torch.nn.Module):
    """An exported emotion head called like the PyTorch one (evaluation, teachers); runs on the CPU."""

    def __init__(self, path: Path, threads: int) -> None:
        super().__init__()
        self.net = OnnxNet(path, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.detach().float().cpu().contiguous().numpy()).to(x.device)


def onnx_metadata(path: Path) -> dict[str, str]:
    """The metadata of an ONNX file (`fer-yolo export` writes kind, class_names, preprocess, ...), read by
    an ONNX Runtime session that skips graph optimisation: importing the onnx package costs ~1 s a start.
    Read once per file version (a start asks up to twice: which file to run, then its checks)."""
    s = Path(path).stat()
    version = (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
    return dict(_read_metadata(str(Path(path).resolve()), version))


@functools.lru_cache(maxsize=8)
def _read_metadata(path: str, version: tuple[int, ...]) -> dict[str, str]:
    """onnx_metadata's read, cached by the file's path and version (inode, size, change times)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def export_metadata(path: Path, kind: str) -> dict[str, str]:
    """The metadata of a `fer-yolo export` file of `kind` (emotion | face-detector), checked.

    Raises:
        WeightsError: Missing or unreadable file, or not a fer-yolo export of that kind.
    """
    if not path.is_file():
        raise WeightsError(f"{kind} weights not found: {path}", "pass an existing .onnx file")
    try:
        meta = onnx_metadata(path)
    except Exception as e:  # onnx raises protobuf's own errors for files that are not models
        raise WeightsError(f"cannot load {path}: {str(e)[:200]}", "pass a file from fer-yolo export") from e
    if meta.get("kind") != kind:
        what = "an emotion head" if kind == "emotion" else "a face detector"
        raise WeightsError(f"{path} is not {what} exported by fer-yolo", "export one with its .pt")
    quantization = meta.get("quantization", "")
    full_bytes = quantization.startswith("int8") and SEVEN_BIT_WEIGHTS not in quantization
    isa = int8_isa()
    if full_bytes and isa in SATURATING_ISAS:
        LOGGER.warning(
            "%s has 8-bit weights, whose products this CPU (%s) adds in 16 bits, which saturate: its answers "
            "may differ from the fp32 file's; export it again with `fer-yolo export --weights <.pt> --int8`",
            path,
            isa,
        )
    return meta


def exported_from(path: Path, weights: Path) -> bool | None:
    """Whether the ONNX file `path` is `fer-yolo export`'s export of `weights`, by the sha256 it records;
    None for a file that records none (exported before fer-yolo recorded it)."""
    recorded = onnx_metadata(path).get("source_sha256")
    return None if recorded is None else recorded == file_digest(weights)


def shipped_weights(role: str, onnx: bool) -> Path:
    """The shipped weights of `role` (detector | emotion): for ONNX Runtime its int8 export, unless that
    export records (sha256) a `.pt` other than the one beside it, e.g. a newly shipped file not exported
    again; else the `.pt`."""
    pt, chosen = default_weights(role), default_weights(role, onnx)
    if chosen == pt or not pt.is_file():
        return chosen
    if exported_from(chosen, pt) is False:  # a file without the record is trusted
        LOGGER.warning(
            "%s is the export of another %s: running the .pt (export it again: fer-yolo export --weights %s "
            "--int8)",
            chosen,
            pt.name,
            pt,
        )
        return pt
    return chosen
