"""YOLO face detector (an ultralytics network), returning the same sv.Detections as every detector.

Weights are ultralytics detection checkpoints: a `fer-yolo train detector` run's weights/best.pt, or the
shipped weights/face_yolo11n.pt written by `save_face_weights` (EMA model in fp16, no optimizer). Both
are read with ultralytics' allow-list loader (`torch_safe_load(safe_only=True)`, i.e.
torch.load(weights_only=True) admitting only ultralytics/torch module classes), so no code stored in a
file ever runs, and both also load in plain ultralytics (`YOLO("weights/face_yolo11n.pt")`). A detector
exported by `fer-yolo export` (.onnx, fp32 or int8) runs as it is, in ONNX Runtime on the CPU.

Inference is done here rather than through ultralytics' predictor: frames are letterboxed to a
stride-multiple canvas no larger than needed (a 16:9 frame at 320 runs at 320x192), batched, and
NMS-ed by ultralytics' non_max_suppression.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
import torch

from fer_yolo.config import pipeline_default
from fer_yolo.data.images import PAD_VALUE
from fer_yolo.detectors.base import FaceDetector, make_detections
from fer_yolo.errors import WeightsError
from fer_yolo.onnx_backend import (
    OnnxNet,
    cached_onnx,
    export_detector_onnx,
    export_metadata,
    use_onnx,
)
from fer_yolo.utils.device import select_device
from fer_yolo.utils.io import save_checkpoint
from fer_yolo.utils.paths import default_weights, missing_weights_hint
from fer_yolo.utils.ultralytics_env import setup_ultralytics

#: Below this confidence threshold (evaluation's 0.01) NMS sees thousands of candidates per image.
LOW_CONF = 0.1


def load_yolo_checkpoint(path: str | Path) -> dict:
    """Read an ultralytics checkpoint with the allow-list loader; its "model" is the EMA network (fp32).

    Raises:
        WeightsError: Missing, damaged, or not an ultralytics detection checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"YOLO face weights not found: {path}", missing_weights_hint("detector", "--weights", path)
        )
    setup_ultralytics()
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
        model = (ckpt.get("ema") or ckpt["model"]).float().eval()
    except Exception as e:  # ultralytics raises several types for foreign or damaged files
        raise WeightsError(
            f"cannot load {path} as YOLO face weights: {type(e).__name__}: {str(e)[:200]}",
            "pass weights/face_yolo11n.pt or a `fer-yolo train detector` run's weights/best.pt",
        ) from e
    return {**ckpt, "model": model}


def read_onnx_detector(path: Path) -> int:
    """The stride recorded in a face detector exported by `fer-yolo export`.

    Raises:
        WeightsError: Missing or unreadable file, or not a fer-yolo face detector.
    """
    meta = export_metadata(path, "face-detector")
    try:
        return int(meta["stride"])
    except (KeyError, ValueError) as e:
        raise WeightsError(
            f"{path}: unreadable metadata ({e!r})", "export it again with fer-yolo export"
        ) from e


def network_input(batch: np.ndarray) -> np.ndarray:
    """A letterboxed BGR uint8 batch (n, H, W, 3) as the exported network reads it: RGB, NCHW, float32 0-1."""
    return np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255


def save_face_weights(src: str | Path, dst: str | Path, **card) -> Path:
    """Write the inference part of a training checkpoint: EMA model in fp16, no optimizer, atomically.

    Args:
        src: An ultralytics detection checkpoint (a run's weights/best.pt).
        dst: Output file (e.g. weights/face_yolo11n.pt).
        **card: Plain-data facts stored under "fer_yolo" (e.g. metrics, the command that made it).

    The same source and card give the same bytes (the source's own save date is kept), so a file packed again
    keeps its sha256 and any export that records it.
    """
    ckpt = load_yolo_checkpoint(src)
    model = copy.deepcopy(ckpt["model"]).half()
    model.args = dict(getattr(model, "args", {}) or {})
    model.criterion = None
    for p in model.parameters():
        p.requires_grad_(False)
    from ultralytics import __version__ as ultralytics_version

    out = {
        "model": model,
        "train_args": dict(ckpt.get("train_args") or {}),
        "epoch": -1,
        "date": ckpt.get("date"),
        "version": ultralytics_version,
        "fer_yolo": card,
    }
    save_checkpoint(dst, out)
    return Path(dst)


def letterbox_batch(images: list[np.ndarray], imgsz: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize images so their longest side is `imgsz` and pad them onto one stride-multiple canvas.

    Returns:
        (uint8 batch (n, H, W, 3) BGR, float32 (n, 3) of [scale, pad_x, pad_y] per image).
    """
    sizes = []
    for im in images:
        h, w = im.shape[:2]
        r = imgsz / max(h, w)
        sizes.append((r, max(1, round(w * r)), max(1, round(h * r))))
    canvas_w = int(np.ceil(max(s[1] for s in sizes) / stride) * stride)
    canvas_h = int(np.ceil(max(s[2] for s in sizes) / stride) * stride)
    batch = np.full((len(images), canvas_h, canvas_w, 3), PAD_VALUE, np.uint8)
    transforms = np.empty((len(images), 3), np.float32)
    for i, (im, (r, w, h)) in enumerate(zip(images, sizes)):
        interp = cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR
        resized = im if (w, h) == im.shape[1::-1] else cv2.resize(im, (w, h), interpolation=interp)
        px, py = (canvas_w - w) // 2, (canvas_h - h) // 2
        batch[i, py : py + h, px : px + w] = resized
        transforms[i] = (r, px, py)
    return batch, transforms


class YoloFaceDetector(FaceDetector):
    """Faces from YOLO face weights.

    Args:
        weights: Ultralytics detection checkpoint (default: the shipped weights/face_yolo11n.pt), or a
            detector exported by `fer-yolo export` (.onnx, fp32 or int8: always run by ONNX Runtime on the
            CPU, whatever `device` and `backend` say).
        imgsz: Inference size of the longest side, pixels.
        conf: Minimum confidence kept.
        iou: NMS IoU threshold.
        device: auto | cpu | cuda | cuda:N.
        half: fp16 inference (CUDA only).
        max_det: Most faces per image (default: pipeline.max_faces).
        backend: auto (ONNX Runtime on the CPU, about 2x faster there; PyTorch on CUDA) | torch | onnx.
            The ONNX export is made once per weights file into fer-yolo's cache.
        Settings left out (None) take the `pipeline` section's defaults (fer_yolo/cfg/default.yaml).

    Raises:
        WeightsError: The weights are missing or unreadable.

    Example:
        >>> faces = YoloFaceDetector().detect(cv2.imread("group.jpg"))  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        imgsz: int | None = None,
        conf: float | None = None,
        iou: float | None = None,
        device: str | None = None,
        half: bool | None = None,
        max_det: int | None = None,
        backend: str | None = None,
    ) -> None:
        imgsz, conf = pipeline_default(imgsz, "imgsz"), pipeline_default(conf, "conf")
        iou, device = pipeline_default(iou, "iou"), pipeline_default(device, "device")
        half, max_det = pipeline_default(half, "half"), pipeline_default(max_det, "max_faces")
        backend = pipeline_default(backend, "backend")
        path = Path(weights or default_weights("detector")).expanduser()
        self.weights = str(path)
        self.imgsz, self.conf, self.iou, self.max_det = imgsz, conf, iou, max_det
        exported = path.suffix.lower() == ".onnx"
        self.device = torch.device("cpu") if exported else select_device(device)
        self.half = half and self.device.type == "cuda"
        onnx_backend = use_onnx(backend, self.device)  # also checks the setting
        setup_ultralytics()
        from ultralytics.utils.nms import non_max_suppression

        self._nms = non_max_suppression
        if conf < LOW_CONF:
            # ultralytics' NMS runs torchvision's kernel once torchvision is imported, else its own loop
            # (same boxes): 1.3-1.8x faster per image at eval's conf 0.01 (thousands of candidates), no
            # faster at the pipeline's 0.4, where the import's ~2.5 s (torch._dynamo) only slows the start.
            import torchvision  # noqa: F401
        if exported:
            self.stride, self.end2end, self.backend = read_onnx_detector(path), False, "onnx"
            self._net = OnnxNet(path, torch.get_num_threads())
        else:
            model = load_yolo_checkpoint(path)["model"]
            model = model.fuse(verbose=False) if hasattr(model, "fuse") else model
            self.stride = int(max(model.stride.max().item(), 32))
            self.end2end = getattr(model, "end2end", False)
            self.backend = "onnx" if onnx_backend else "torch"
            if self.backend == "onnx":
                onnx = cached_onnx(path, lambda out: export_detector_onnx(model, out))
                self._net = OnnxNet(onnx, torch.get_num_threads())
            else:
                # channels_last: about 20% faster convolutions on the CPU (measured on the AVX2 machines)
                self.model = (model.half() if self.half else model).to(
                    self.device, memory_format=torch.channels_last
                )
        # ultralytics' Detect head caches its anchors for the last input shape: calls from several threads
        # (the web app's image route, video jobs and live feed) must not interleave.
        self._lock = threading.Lock()

    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        """Raw predictions (n, 4 + classes, anchors) for a letterboxed BGR uint8 batch (n, H, W, 3)."""
        if self.backend == "onnx":
            return self._net(network_input(batch))
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).flip(1)  # BGR -> RGB, NCHW
        x = (x.half() if self.half else x.float()).div_(255).contiguous(memory_format=torch.channels_last)
        return self.model(x)

    @torch.inference_mode()
    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        if not images:
            return []
        batch, transforms = letterbox_batch(images, self.imgsz, self.stride)
        with self._lock:
            preds = self._forward(batch)
            kept = self._nms(preds, self.conf, self.iou, max_det=self.max_det, end2end=self.end2end)
        out = []
        for det, (r, px, py), im in zip(kept, transforms, images):
            det = det.float().cpu().numpy()
            xyxy = (det[:, :4] - np.array([px, py, px, py], np.float32)) / r
            h, w = im.shape[:2]
            xyxy = np.clip(xyxy, 0, [w, h, w, h])
            out.append(make_detections(xyxy, det[:, 4]))
        return out
