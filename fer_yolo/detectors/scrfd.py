"""SCRFD face detector (insightface) on an ONNX file the user supplies, run by ONNX Runtime.

SCRFD is a peer for comparison and an optional backend: fer-yolo neither ships nor downloads its weights,
and insightface's SCRFD weights are licensed for non-commercial research only. Only exports with keypoints
(`*_kps.onnx`) fit: nine outputs, per stride 8/16/32 with 2 anchors per cell, of face scores (n, 1),
box distances (n, 4) and 5 keypoint offsets (n, 10), both in stride units, around each anchor's cell
corner. The decoding follows insightface's `scrfd.py`: input RGB (x - 127.5) / 128, boxes
(cx - l, cy - t, cx + r, cy + b) and keypoints (cx + dx, cy + dy), times the stride.

Files whose input is fixed (the common 1x3x640x640 export) run at that size, each image letterboxed onto it;
at any other `imgsz` (or with a dynamic input) the input is made dynamic in memory (the graph computes its
own shapes) and each image runs on its smallest 32-multiple canvas.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import supervision as sv
import torch

from fer_yolo.detectors.base import FaceDetector, make_detections, user_weights_file
from fer_yolo.detectors.yolo import letterbox_batch
from fer_yolo.errors import ConfigError, WeightsError
from fer_yolo.onnx_backend import onnx_session

#: Feature strides of the three output levels, finest first.
STRIDES = (8, 16, 32)
#: Last dimension of each output kind: face score, box distances (l, t, r, b), 5 keypoints (x, y).
_WIDTHS = {"scores": 1, "boxes": 4, "keypoints": 10}
#: Canvas multiple of dynamic-input runs: the coarsest stride.
_CANVAS_STRIDE = 32

_HINT = (
    "pass an SCRFD export with keypoints (e.g. scrfd_500m_kps.onnx; insightface's weights are for "
    "non-commercial research only): --weights PATH, pipeline.detector_weights, or "
    "`eval detector --compare scrfd=PATH`; fer-yolo neither ships nor downloads it"
)


def decode_scrfd(
    outputs: list[np.ndarray], canvas_hw: tuple[int, int], conf: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes, scores and keypoints above `conf` from SCRFD's nine outputs for one image (before NMS).

    Args:
        outputs: float32 arrays in insightface's order: scores (n_s, 1) of strides 8, 16, 32, then box
            distances (n_s, 4), then keypoint offsets (n_s, 10); a leading batch axis of 1 is allowed.
            Rows go cell by cell in row-major order, the anchors of a cell one after the other.
        canvas_hw: (height, width) of the network input, pixels.
        conf: Minimum score kept.

    Returns:
        xyxy float32 (m, 4) and scores float32 (m,) and keypoints float32 (m, 5, 2), in canvas pixels.

    Raises:
        WeightsError: An output whose row count does not fit the strides and the canvas.

    Example:
        >>> grid = [np.zeros((n, w), np.float32) for w in (1, 4, 10) for n in (32, 8, 2)]
        >>> grid[1][4], grid[4][4] = 0.75, [0.5, 0.25, 1.0, 0.75]  # stride 16, cell (1, 0), anchor 0
        >>> xyxy, scores, keypoints = decode_scrfd(grid, (32, 32), conf=0.5)
        >>> xyxy.tolist(), scores.tolist(), keypoints.shape
        ([[-8.0, 12.0, 16.0, 28.0]], [0.75], (1, 5, 2))
    """
    height, width = canvas_hw
    found = []
    for level, stride in enumerate(STRIDES):
        scores, dist, kps = (outputs[level + k * len(STRIDES)] for k in range(3))
        scores, dist, kps = scores.reshape(-1), dist.reshape(-1, 4), kps.reshape(-1, 5, 2)
        cells = (height // stride) * (width // stride)
        if cells == 0 or len(scores) % cells or not len(scores) == len(dist) == len(kps):
            raise WeightsError(
                f"SCRFD output of stride {stride} has {len(scores)} rows, which no anchor count fits on a "
                f"{height}x{width} input",
                _HINT,
            )
        keep = np.flatnonzero(scores >= conf)
        rows, cols = np.divmod(keep // (len(scores) // cells), width // stride)  # row-major cells
        centres = np.stack([cols, rows], 1).astype(np.float32) * stride
        xyxy = np.concatenate([centres - dist[keep, :2] * stride, centres + dist[keep, 2:] * stride], 1)
        found.append((xyxy, scores[keep], centres[:, None] + kps[keep] * stride))
    xyxy, scores, kps = (np.concatenate(parts).astype(np.float32) for parts in zip(*found))
    return xyxy, scores, kps


class ScrfdDetector(FaceDetector):
    """Faces and 5 landmarks from an SCRFD keypoint export, through ONNX Runtime on the CPU.

    Args:
        weights: The SCRFD `*_kps.onnx` file (required: no default is shipped).
        imgsz: Network input side, pixels, a multiple of 32: the file's own size runs a fixed-input file as it
            is (640 for the common export); at any other size the input is made dynamic in memory.
        conf: Minimum face score kept.
        iou: NMS IoU threshold.
        max_det: Most faces per image, the most confident.

    Raises:
        WeightsError: No weights given, no file there, or not an SCRFD keypoint export that runs at `imgsz`.
        ConfigError: Settings out of range.

    Example:
        >>> detector = ScrfdDetector("scrfd_500m_kps.onnx", imgsz=640)  # doctest: +SKIP
        >>> faces = detector.detect(cv2.imread("group.jpg"))  # doctest: +SKIP
        >>> faces.xyxy, faces.confidence, faces.data["landmarks"]  # doctest: +SKIP
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        imgsz: int = 640,
        conf: float = 0.5,
        iou: float = 0.4,
        max_det: int = 5000,
    ) -> None:
        size_ok = imgsz >= _CANVAS_STRIDE and imgsz % _CANVAS_STRIDE == 0
        if not (size_ok and 0 <= conf <= 1 and 0 <= iou <= 1 and max_det >= 1):
            raise ConfigError(
                f"bad SCRFD settings: imgsz={imgsz}, conf={conf}, iou={iou}, max_det={max_det}",
                f"imgsz a multiple of {_CANVAS_STRIDE}, 0 <= conf <= 1, 0 <= iou <= 1, max_det >= 1",
            )
        path = user_weights_file(weights, "scrfd", _HINT)
        self.weights = str(path)
        self.imgsz, self.conf, self.iou, self.max_det = int(imgsz), float(conf), float(iou), int(max_det)
        model, self.fixed = _load_model(path, self.imgsz)
        try:
            self._session = onnx_session(model, torch.get_num_threads())
            self._input = self._session.get_inputs()[0].name
            probe = self._session.run(None, {self._input: np.zeros((1, 3, imgsz, imgsz), np.float32)})
        except Exception as e:  # ONNX Runtime raises its own types for graphs it cannot load or run
            hint = f"run it at its input size (imgsz), or {_HINT}"
            raise WeightsError(f"cannot run {path} at {imgsz}x{imgsz}: {str(e)[:200]}", hint) from e
        self._order = _output_order(path, [np.asarray(o) for o in probe], self.imgsz)

    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        """Detect faces and landmarks in BGR uint8 (H, W, 3) images, one network run per image.

        Returns:
            One `sv.Detections` per image: xyxy float32 pixels clipped to the image, SCRFD's score as
            confidence, landmarks float32 (n, 5, 2) (eyes, nose tip, mouth corners) in `data["landmarks"]`.
        """
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: np.ndarray) -> sv.Detections:
        # A fixed input takes exactly imgsz x imgsz: a canvas multiple of imgsz is that square.
        stride = self.imgsz if self.fixed else _CANVAS_STRIDE
        batch, ((r, px, py),) = letterbox_batch([image], self.imgsz, stride)
        x = (batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) - 127.5) / 128  # BGR -> RGB, NCHW
        outputs = self._session.run(None, {self._input: x})
        xyxy, scores, kps = decode_scrfd([outputs[i] for i in self._order], batch.shape[1:3], self.conf)
        xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], 1)
        # Scores are >= conf already (OpenCV's threshold is strict: conf would drop a score equal to it).
        keep = cv2.dnn.NMSBoxes(xywh, scores, 0.0, self.iou, top_k=self.max_det)
        keep = np.asarray(keep, int).reshape(-1)  # best first
        offset = np.array([px, py], np.float32)
        xyxy = (xyxy[keep].reshape(-1, 2, 2) - offset).reshape(-1, 4) / r
        height, width = image.shape[:2]
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        return make_detections(xyxy, scores[keep], (kps[keep] - offset) / r)


def _load_model(path: Path, imgsz: int) -> tuple[Path | bytes, bool]:
    """The model to run at `imgsz`, and whether its input is fixed at imgsz x imgsz.

    A file with another fixed input size gets symbolic height and width (and outputs of unknown length)
    in memory, so that ONNX Runtime runs it at any canvas.

    Raises:
        WeightsError: Not a readable ONNX file.
    """
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and others for files that are not ONNX
        raise WeightsError(f"cannot read {path} as ONNX: {str(e)[:200]}", _HINT) from e
    initializers = {t.name for t in model.graph.initializer}  # old exports list weights as inputs too
    inputs = [i for i in model.graph.input if i.name not in initializers]
    dims = inputs[0].type.tensor_type.shape.dim if inputs else []
    if len(dims) != 4:
        raise WeightsError(f"{path} has no (1, 3, H, W) image input: not an SCRFD export", _HINT)
    if [d.dim_value for d in dims[2:]] == [imgsz, imgsz]:
        return path, True
    if not any(d.dim_value for d in dims[2:]):  # already dynamic
        return path, False
    for dim, name in zip(dims[2:], ("height", "width")):
        dim.dim_param = name  # replaces a fixed dim_value (a oneof field)
    for output in model.graph.output:
        for k, dim in enumerate(output.type.tensor_type.shape.dim):
            if k > 0 and dim.dim_value:
                dim.dim_param = f"{output.name}_dim{k}"
    return model.SerializeToString(), False


def _output_order(path: Path, outputs: list[np.ndarray], imgsz: int) -> list[int]:
    """Indices of the session's outputs in `decode_scrfd`'s order, told apart by their shapes.

    Kinds by last axis (1, 4, 10) and, within a kind, strides by row count (finest stride: most rows),
    so exports that name or order their outputs differently still decode.

    Raises:
        WeightsError: Not the nine outputs of an SCRFD keypoint export.
    """
    shapes = [o.shape for o in outputs]
    order = []
    for width in _WIDTHS.values():
        kind = [i for i, s in enumerate(shapes) if len(s) in (2, 3) and s[-1] == width]
        order += sorted(kind, key=lambda i: -int(np.prod(shapes[i][:-1])))
    rows = [int(np.prod(shapes[i][:-1])) for i in order]
    per_cell = [rows[k] / (imgsz // s) ** 2 for k, s in enumerate(STRIDES * 3)] if len(order) == 9 else []
    if len(outputs) != 9 or len(set(per_cell)) != 1 or not float(per_cell[0]).is_integer():
        raise WeightsError(
            f"{path} is not an SCRFD export with keypoints: its outputs have shapes {shapes}",
            f"expected 9 outputs, (n, 1), (n, 4) and (n, 10) per stride {STRIDES}; {_HINT}",
        )
    return order
