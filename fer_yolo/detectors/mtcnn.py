"""MTCNN face detector: a PyTorch port of the `mtcnn` 1.0.0 package with its original P/R/O-Net weights.

The cascade follows the package's own code (mtcnn/stages, mtcnn/utils) step by step, including its quirks:
RGB input normalised as (x - 127.5) / 128; a pyramid whose length ignores min_face_size; TensorFlow's AREA
resize to truncated sizes; P-Net boxes at (2x + 1, 2y + 1, 2x + 12, 2y + 12) with regression scaled by 11;
an NMS that drops every box overlapping *any* higher-scored box (suppressed or not); 24/48-px patches cut
with TensorFlow's crop_and_resize (normalised by the image size, sampled on a (size - 1) grid, zeros outside);
regression scaled by width + 1; no squaring after O-Net; boxes clipped to [0, W - 1] x [0, H - 1].
Each image runs on its own, so batching never changes a result (the package pads a batch to one size).
The package's TensorFlow code is never imported: only its weight files are read.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv
import torch
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from torch import nn
from torch.nn import functional as F

from fer_yolo.detectors.base import FaceDetector, make_detections
from fer_yolo.errors import ConfigError, WeightsError
from fer_yolo.utils.device import select_device

LOGGER = logging.getLogger(__name__)

_WEIGHTS_HINT = "pip install mtcnn==1.0.0 (fer-yolo reads only its assets/weights/*.lz4), or pass weights_dir"
#: Smallest window P-Net sees, in pyramid pixels.
_CELL = 12
#: Smallest pyramid side that still gives a P-Net output cell (the package fails on sides <= 8 instead;
#: with min_face_size <= 20 no pyramid level is that small).
_MIN_PNET_SIDE = 11
#: NMS settings of the package: P-Net per scale, P-Net over all scales, R-Net, O-Net.
_NMS_PNET_SCALE, _NMS_PNET_ALL, _NMS_RNET, _NMS_ONET = 0.5, 0.7, 0.7, 0.7
#: Patches per R-/O-Net forward pass (bounds memory on images with many proposals).
_NET_CHUNK = 1024


class _KerasFlatten(nn.Module):
    """Keras `Permute((2, 1, 3))` + `Flatten` on NHWC, i.e. flattening in (W, H, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 2, 1).flatten(1)


class _Net(nn.Module):
    """A trunk plus output heads; the last head is the face/non-face softmax."""

    def __init__(self, trunk: list[nn.Module], heads: list[nn.Module]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*trunk)
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(x.contiguous(memory_format=torch.channels_last))  # 1.6-1.9x faster on CPU
        outputs = [head(features) for head in self.heads]
        outputs[-1] = F.softmax(outputs[-1], dim=1)
        return outputs


def _conv(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    """A 'valid' convolution followed by a per-channel PReLU."""
    return [nn.Conv2d(c_in, c_out, k), nn.PReLU(c_out)]


def _pool(k: int, same: bool) -> nn.MaxPool2d:
    """Max-pool, stride 2; Keras 'same' padding only ever pads after, which ceil_mode reproduces here."""
    return nn.MaxPool2d(k, 2, ceil_mode=same)


def _build_pnet() -> _Net:
    trunk = [*_conv(3, 10, 3), _pool(2, True), *_conv(10, 16, 3), *_conv(16, 32, 3)]
    return _Net(trunk, [nn.Conv2d(32, 4, 1), nn.Conv2d(32, 2, 1)])


def _build_rnet() -> _Net:
    trunk = [*_conv(3, 28, 3), _pool(3, True), *_conv(28, 48, 3), _pool(3, False), *_conv(48, 64, 2)]
    trunk += [_KerasFlatten(), nn.Linear(576, 128), nn.PReLU(128)]
    return _Net(trunk, [nn.Linear(128, 4), nn.Linear(128, 2)])


def _build_onet() -> _Net:
    trunk = [*_conv(3, 32, 3), _pool(3, True), *_conv(32, 64, 3), _pool(3, False), *_conv(64, 64, 3)]
    trunk += [_pool(2, True), *_conv(64, 128, 2), _KerasFlatten(), nn.Linear(1152, 256), nn.PReLU(256)]
    return _Net(trunk, [nn.Linear(256, 4), nn.Linear(256, 10), nn.Linear(256, 2)])


def _default_weights_dir() -> Path:
    """assets/weights of the installed mtcnn package, found without importing it (it imports TensorFlow)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the mtcnn package (the original MTCNN weights) is not installed", _WEIGHTS_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "weights"


def _torch_layout(array: np.ndarray) -> torch.Tensor:
    """One Keras weight in torch layout.

    Conv kernels (kh, kw, in, out) become (out, in, kh, kw), dense (in, out) become (out, in) and PReLU
    alphas (1, 1, C) become (C,); biases stay as they are.
    """
    value = torch.from_numpy(np.asarray(array, np.float32))
    if value.ndim == 4:
        return value.permute(3, 2, 0, 1)
    return value.T if value.ndim == 2 else value.reshape(-1)


#: The only globals the package's weight files name: arrays and their dtypes.
_ARRAY_GLOBALS = {("numpy", "dtype"), ("numpy", "ndarray"), ("joblib.numpy_pickle", "NumpyArrayWrapper")}


class _ArraysOnly(NumpyUnpickler):
    """joblib's unpickler limited to numeric arrays in lists: no code stored in a weight file can run."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def find_class(self, module: str, name: str):
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not an array type")
        return super().find_class(module, name)

    def load_build(self) -> None:
        obj, state = self.stack[-2], self.stack[-1]
        if isinstance(obj, NumpyArrayWrapper) and not (
            isinstance(state, dict) and not np.dtype(state.get("dtype", object)).hasobject
        ):  # joblib stores object arrays as nested plain pickles
            raise pickle.UnpicklingError("only numeric arrays are allowed")
        NumpyUnpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


def _read_arrays(path: Path) -> object:
    """The object in a joblib lz4 file (joblib.dump(..., compress="lz4")), read with `_ArraysOnly`."""
    import lz4.frame

    with lz4.frame.open(path, "rb") as f:
        return _ArraysOnly(str(path), f, ensure_native_byte_order=True).load()


def _load_net(net: _Net, path: Path) -> _Net:
    """Copy a joblib-pickled list of Keras weights, in the order the package's model defines them, into `net`.

    Raises:
        WeightsError: The file is missing, unreadable or does not fit the network.
    """
    if not path.is_file():
        raise WeightsError(f"MTCNN weights not found: {path}", _WEIGHTS_HINT)
    try:
        arrays = _read_arrays(path)
    except Exception as e:  # many kinds: missing lz4, truncated, foreign or refused file
        hint = f"pip install lz4, or {_WEIGHTS_HINT}"
        raise WeightsError(f"cannot read MTCNN weights {path}: {e}", hint) from e
    params = list(net.parameters())
    if not isinstance(arrays, list) or len(arrays) != len(params):
        raise WeightsError(f"{path} does not hold the {len(params)} arrays this network needs", _WEIGHTS_HINT)
    with torch.no_grad():
        for param, array in zip(params, arrays):
            value = _torch_layout(array)
            if value.shape != param.shape:
                message = f"{path}: array of shape {np.shape(array)} does not fit {tuple(param.shape)}"
                raise WeightsError(message, _WEIGHTS_HINT)
            param.copy_(value)
    return net.eval().requires_grad_(False)


def _pyramid_scales(height: int, width: int, min_face_size: float, scale_factor: float) -> np.ndarray:
    """The package's build_scale_pyramid: its count uses the image size only, not min_face_size."""
    min_dim = min(width, height)
    if min_dim < _CELL:
        return np.empty(0)
    count = round(-((np.log(min_dim / _CELL) / np.log(scale_factor)) + 1))
    return (_CELL / min_face_size) * scale_factor ** np.arange(count)


@functools.lru_cache(maxsize=256)
def _area_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights (out_size, taps) of TensorFlow's ResizeArea along one axis, in float32."""
    scale = np.float32(in_size) / np.float32(out_size)
    edges = np.arange(out_size + 1).astype(np.float32) * scale
    lo, hi = edges[:-1, None], edges[1:, None]
    start, end = np.floor(lo).astype(np.int64), np.ceil(hi).astype(np.int64)
    idx = start + np.arange(int((end - start).max()))
    pos = idx.astype(np.float32)
    past_end = pos + 1 > hi
    weight = np.where(pos < lo, np.where(past_end, scale, pos + 1 - lo), np.where(past_end, hi - pos, 1))
    return np.clip(idx, 0, in_size - 1), np.where(idx < end, weight, 0).astype(np.float32)


def _area_axis(images: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """ResizeArea's weighted sums along one axis of `images`, not yet divided by the scale."""
    idx, weight = (torch.from_numpy(a).to(images.device) for a in _area_taps(images.shape[dim], out_size))
    view = (-1,) + (1,) * (images.ndim - 1 - dim)
    return sum(images.index_select(dim, idx[:, k]) * weight[:, k].view(view) for k in range(idx.shape[1]))


def _resize_area(images: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """tf.image.resize(method=AREA) of (B, C, H, W) float32 images: box filter, fractional edge weights."""
    height, width = images.shape[-2:]
    scale_h, scale_w = np.float32(height) / np.float32(out_h), np.float32(width) / np.float32(out_w)
    norm = np.float32(1.0 / float(scale_h * scale_w))  # TF's float32 1 / (scale_h * scale_w)
    return _area_axis(_area_axis(images, out_h, 2), out_w, 3) * float(norm)


@dataclass(frozen=True)
class _Frames:
    """The normalised images of one batch in one buffer, for cutting patches of all of them at once.

    Attributes:
        flat: (3, sum of H*W) float32, each image's pixels after the previous one's.
        starts: (images,) int64 offset of each image in `flat`.
        shapes: (images, 2) int64 (H, W) of each image.
    """

    flat: torch.Tensor
    starts: np.ndarray
    shapes: np.ndarray

    @classmethod
    def of(cls, tensors: list[torch.Tensor], shapes: np.ndarray) -> _Frames:
        flat = torch.cat([t.reshape(3, -1) for t in tensors], 1)
        return cls(flat, np.concatenate([[0], np.cumsum(shapes.prod(1))[:-1]]).astype(np.int64), shapes)


def _crop_and_resize(frames: _Frames, boxes: np.ndarray, size: int) -> torch.Tensor:
    """tf.image.crop_and_resize (bilinear, zeros outside) of pixel boxes [image, x1, y1, x2, y2, ...].

    Returns:
        (n, 3, size, size) float32 patches on the device of `frames`.
    """
    device = frames.flat.device
    image = boxes[:, 0].astype(np.int64)
    hw = frames.shapes[image]
    norm = (boxes[:, [2, 1, 4, 3]] / np.concatenate([hw, hw], 1)).astype(np.float32)  # y1, x1, y2, x2
    y1, x1, y2, x2 = torch.from_numpy(norm).to(device).T
    h1, w1 = torch.from_numpy(hw - 1).to(device, torch.float32).T[:, :, None]
    grid = torch.arange(size, device=device, dtype=torch.float32)
    in_y = (y1 * h1[:, 0])[:, None] + grid * ((y2 - y1) * h1[:, 0] / (size - 1))[:, None]
    in_x = (x1 * w1[:, 0])[:, None] + grid * ((x2 - x1) * w1[:, 0] / (size - 1))[:, None]
    inside = ((in_y >= 0) & (in_y <= h1))[:, :, None] & ((in_x >= 0) & (in_x <= w1))[:, None, :]
    in_y, in_x = torch.minimum(in_y.clamp(min=0), h1), torch.minimum(in_x.clamp(min=0), w1)
    top, left, bottom, right = in_y.floor(), in_x.floor(), in_y.ceil(), in_x.ceil()
    width = torch.from_numpy(hw[:, 1]).to(device)[:, None, None]
    base = torch.from_numpy(frames.starts[image]).to(device)[:, None, None]

    def gather(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        index = base + rows.long()[:, :, None] * width + cols.long()[:, None, :]
        return frames.flat[:, index].transpose(0, 1)

    lerp_x = (in_x - left)[:, None, None, :]
    upper = gather(top, left) + (gather(top, right) - gather(top, left)) * lerp_x
    lower = gather(bottom, left) + (gather(bottom, right) - gather(bottom, left)) * lerp_x
    return (upper + (lower - upper) * (in_y - top)[:, None, :, None]) * inside[:, None]


def _nms(boxes: np.ndarray, threshold: float, method: str) -> np.ndarray:
    """Indices kept by the package's NMS: a box goes if it overlaps any earlier box by more than `threshold`.

    Unlike greedy NMS, a box suppressed itself still suppresses later ones. `method` 'union' is IoU, 'min'
    divides the intersection by the smaller area. Runs in column blocks to bound memory.
    """
    x1, y1, x2, y2 = boxes[:, 1:5].T
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), bool)
    block = max(16, 2**21 // max(len(boxes), 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        for lo in range(0, len(boxes), block):
            hi = min(lo + block, len(boxes))
            cols = slice(lo, hi)
            inter = np.maximum(0, np.minimum(x2[:hi, None], x2[cols]) - np.maximum(x1[:hi, None], x1[cols]))
            inter *= np.maximum(0, np.minimum(y2[:hi, None], y2[cols]) - np.maximum(y1[:hi, None], y1[cols]))
            if method == "union":
                overlap = inter / (area[:hi, None] + area[cols] - inter)
            else:
                overlap = inter / np.minimum(area[:hi, None], area[cols])
            earlier = np.arange(hi)[:, None] < np.arange(lo, hi)
            suppressed[cols] = ((overlap > threshold) & earlier).any(0)
    return np.flatnonzero(~suppressed)


def _nms_per_image(boxes: np.ndarray, threshold: float, method: str = "union") -> np.ndarray:
    """Rows of `boxes` ([image, x1, y1, x2, y2, score, ...]) kept by NMS within each image, best first."""
    kept = []
    for image in np.unique(boxes[:, 0]):
        rows = boxes[boxes[:, 0] == image]
        rows = rows[np.argsort(rows[:, 5])[::-1]]
        kept.append(rows[_nms(rows, threshold, method)])
    return np.concatenate(kept) if kept else boxes[:0]


def _square(boxes: np.ndarray) -> np.ndarray:
    """Squares boxes around their centres on their longer side (sides without the +1 of regression)."""
    boxes = boxes.copy()
    w, h = boxes[:, 3] - boxes[:, 1], boxes[:, 4] - boxes[:, 2]
    side = np.maximum(w, h)
    boxes[:, 1] = boxes[:, 1] + w * 0.5 - side * 0.5  # this evaluation order, as the package's
    boxes[:, 2] = boxes[:, 2] + h * 0.5 - side * 0.5
    boxes[:, 3:5] = boxes[:, 1:3] + side[:, None]
    return boxes


def _regress(boxes: np.ndarray, offsets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Sets the score column and moves corners by offsets times (side + 1), as the package's adjust_bboxes."""
    boxes = boxes.copy()
    boxes[:, 5] = scores
    w, h = boxes[:, 3] - boxes[:, 1] + 1, boxes[:, 4] - boxes[:, 2] + 1
    boxes[:, 1:5] += offsets * np.stack([w, h, w, h], -1)
    return boxes


class MtcnnDetector(FaceDetector):
    """MTCNN (P-Net -> R-Net -> O-Net) with the original weights of the `mtcnn` 1.0.0 package.

    Returns boxes with the O-Net face probability as confidence and 5 landmarks per face in
    `data["landmarks"]` (n, 5, 2) (x, y) in the package's order: left_eye, right_eye, nose, mouth_left,
    mouth_right, where "left" is the image's left.

    Args:
        min_face_size: Smallest face side to find, in pixels; sets the first pyramid scale (12 / size).
        thresholds: Face-probability thresholds of P-Net, R-Net and O-Net (the package's own O-Net
            default is 0.8; 0.7 is the paper's and the WIDER FACE baseline's).
        scale_factor: Ratio between pyramid levels, in (0, 1).
        device: torch device (or its name, e.g. "cpu", "cuda", "auto") the networks run on.
        weights_dir: Folder with pnet.lz4, rnet.lz4, onet.lz4 (joblib lz4 files, read as arrays only); None
            uses the installed mtcnn package's.

    Raises:
        WeightsError: A weight file is missing or unreadable, or mtcnn is not installed.
        ConfigError: A setting is out of range.

    Example:
        >>> detector = MtcnnDetector(min_face_size=20)  # doctest: +SKIP
        >>> faces = detector.detect(cv2.imread("group.jpg"))  # doctest: +SKIP
        >>> faces.xyxy, faces.confidence, faces.data["landmarks"]  # doctest: +SKIP
    """

    def __init__(
        self,
        min_face_size: float = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
        device: str | torch.device = "cpu",
        weights_dir: str | Path | None = None,
    ) -> None:
        if min_face_size <= 0 or not 0 < scale_factor < 1 or len(thresholds) != 3:
            raise ConfigError(
                f"bad MTCNN settings: min_face_size={min_face_size}, scale_factor={scale_factor}, "
                f"thresholds={thresholds}",
                "min_face_size > 0, 0 < scale_factor < 1, three thresholds (P-Net, R-Net, O-Net)",
            )
        self.min_face_size, self.scale_factor = min_face_size, scale_factor
        self.thresholds = tuple(float(t) for t in thresholds)
        self.device = device if isinstance(device, torch.device) else select_device(device)
        folder = Path(weights_dir) if weights_dir is not None else _default_weights_dir()
        self.weights = str(folder)
        self.pnet, self.rnet, self.onet = (
            _load_net(build(), folder / f"{name}.lz4").to(self.device, memory_format=torch.channels_last)
            for name, build in (("pnet", _build_pnet), ("rnet", _build_rnet), ("onet", _build_onet))
        )

    @torch.inference_mode()
    def detect_batch(self, images: list[np.ndarray]) -> list[sv.Detections]:
        """Detect faces and landmarks in BGR uint8 (H, W, 3) images.

        P-Net runs once per pyramid scale on all images of the same shape; R-Net and O-Net run once on the
        patches of all images together. Each image's result equals that of `detect` on it alone.

        Args:
            images: BGR uint8 (H, W, 3) images, any sizes.

        Returns:
            One `sv.Detections` per image: xyxy float32 pixels clipped to [0, W - 1] x [0, H - 1], the O-Net
            face probability as confidence, landmarks float32 (n, 5, 2) in `data["landmarks"]`; empty when
            nothing is found or the image is smaller than P-Net's 12-px window.
        """
        tensors = [self._normalise(image) for image in images]
        shapes = np.array([image.shape[:2] for image in images], np.int64).reshape(-1, 2)
        boxes = self._propose(tensors)
        if len(boxes):
            frames = _Frames.of(tensors, shapes)
            boxes = self._refine(frames, boxes)
            boxes = self._output(frames, boxes) if len(boxes) else boxes
        LOGGER.debug("MTCNN: %d faces in %d images", len(boxes), len(images))
        return [self._to_detections(boxes[boxes[:, 0] == i], shape) for i, shape in enumerate(shapes)]

    def _normalise(self, image: np.ndarray) -> torch.Tensor:
        """BGR uint8 (H, W, 3) -> RGB float32 (3, H, W) on the device, (x - 127.5) / 128 like the package."""
        rgb = torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).to(self.device)
        return (rgb.permute(2, 0, 1).float() - 127.5) / 128

    def _propose(self, tensors: list[torch.Tensor]) -> np.ndarray:
        """P-Net over each image's pyramid -> squared proposals (n, 6) [image, x1, y1, x2, y2, score]."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, tensor in enumerate(tensors):
            groups.setdefault(tuple(tensor.shape), []).append(i)
        proposals: list[list[np.ndarray]] = [[] for _ in tensors]  # per image, per scale
        for (_, height, width), members in groups.items():
            batch = torch.stack([tensors[i] for i in members])
            for scale in _pyramid_scales(height, width, self.min_face_size, self.scale_factor):
                out_h, out_w = (np.asarray([height, width]) * scale).astype(np.int32)  # TF truncates the size
                if min(out_h, out_w) < _MIN_PNET_SIDE:
                    continue
                offsets, probs = self.pnet(_resize_area(batch, int(out_h), int(out_w)))
                for j, cells in enumerate(self._pnet_cells(offsets, probs)):
                    cells[:, 0], cells[:, 1:5] = members[j], cells[:, 1:5] / scale
                    proposals[members[j]].append(cells[_nms(cells, _NMS_PNET_SCALE, "union")])
        found = [np.concatenate(boxes) for boxes in proposals if boxes]
        boxes = _nms_per_image(np.concatenate(found), _NMS_PNET_ALL) if found else np.empty((0, 6))
        return _square(boxes)

    def _pnet_cells(self, offsets: torch.Tensor, probs: torch.Tensor) -> list[np.ndarray]:
        """Per image of a P-Net batch: boxes of cells above threshold, best first, in pyramid pixels."""
        scores = probs[:, 1]
        image, row, col = torch.nonzero(scores > self.thresholds[0], as_tuple=True)
        reg = offsets[image, :, row, col].double().cpu().numpy()
        score = scores[image, row, col].cpu().numpy().astype(np.float64)
        image, row, col = (t.cpu().numpy() for t in (image, row, col))
        cells = np.stack(
            [
                image,
                2 * col + 1 + reg[:, 0] * 11,
                2 * row + 1 + reg[:, 1] * 11,
                2 * col + 12 + reg[:, 2] * 11,
                2 * row + 12 + reg[:, 3] * 11,
                score,
            ],
            1,
        )
        cells = cells[np.argsort(cells[:, 5])[::-1]]
        return [cells[cells[:, 0] == b] for b in range(len(probs))]

    @staticmethod
    def _run(net: _Net, frames: _Frames, boxes: np.ndarray, size: int) -> list[np.ndarray]:
        """`net` on size x size patches of `boxes`, in chunks -> its outputs as float64 numpy arrays."""
        outputs = [
            net(_crop_and_resize(frames, boxes[lo : lo + _NET_CHUNK], size))
            for lo in range(0, len(boxes), _NET_CHUNK)
        ]
        return [torch.cat(parts).double().cpu().numpy() for parts in zip(*outputs)]

    def _refine(self, frames: _Frames, boxes: np.ndarray) -> np.ndarray:
        """R-Net on 24-px patches: rescore, regress, threshold, NMS, square."""
        offsets, probs = self._run(self.rnet, frames, boxes, 24)
        boxes = _regress(boxes, offsets, probs[:, 1])
        boxes = boxes[boxes[:, 5] > self.thresholds[1]]
        return _square(_nms_per_image(boxes, _NMS_RNET))

    def _output(self, frames: _Frames, boxes: np.ndarray) -> np.ndarray:
        """O-Net on 48-px patches -> (n, 16) [image, x1, y1, x2, y2, score, 5 landmark x, 5 landmark y]."""
        offsets, landmarks, probs = self._run(self.onet, frames, boxes, 48)
        w, h = boxes[:, 3:4] - boxes[:, 1:2] + 1, boxes[:, 4:5] - boxes[:, 2:3] + 1
        landmarks[:, :5] = w * landmarks[:, :5] + boxes[:, 1:2] - 1  # from the boxes before regression
        landmarks[:, 5:] = h * landmarks[:, 5:] + boxes[:, 2:3] - 1
        boxes = np.concatenate([_regress(boxes, offsets, probs[:, 1]), landmarks.astype(np.float32)], 1)
        boxes = boxes[boxes[:, 5] > self.thresholds[2]]
        return _nms_per_image(boxes, _NMS_ONET, "min")

    @staticmethod
    def _to_detections(rows: np.ndarray, shape_hw: np.ndarray) -> sv.Detections:
        """Rows of one image -> Detections with boxes clipped to the image, as the package's limit_bboxes."""
        xyxy = np.clip(rows[:, 1:5], 0, np.asarray([shape_hw[1], shape_hw[0]] * 2) - 1)
        return make_detections(xyxy, rows[:, 5], np.stack([rows[:, 6:11], rows[:, 11:16]], -1))
