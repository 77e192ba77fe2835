"""Face-crop preprocessing shared by training, evaluation, the pipeline and export.

Checkpoints carry their preprocessing in `meta` (input size, channels, mean/std), so a model is
always fed the way it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fer_yolo.emotion.tta import TTA_MODES


def square_crop(image: np.ndarray, xyxy: np.ndarray, margin: float) -> np.ndarray:
    """A square crop centred on a face box, its side max(w, h) * (1 + 2 * margin).

    Parts outside the image are filled by replicating the border, so the face stays centred.

    Args:
        image: (H, W, C) or (H, W) uint8 frame.
        xyxy: Face box (4,) in frame pixels.
        margin: Extra context on each side, as a fraction of the box's longer side.

    Example:
        >>> square_crop(np.zeros((100, 200, 3), np.uint8), np.array([0, 0, 40, 20]), 0.1).shape  # 40 * 1.2
        (48, 48, 3)
    """
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
    s = max(int(round(side)), 1)
    left, top = int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2))
    h, w = image.shape[:2]
    x0, y0, x1c, y1c = max(left, 0), max(top, 0), min(left + s, w), min(top + s, h)
    if x1c <= x0 or y1c <= y0:  # box entirely outside the frame
        return np.zeros((s, s, *image.shape[2:]), image.dtype)
    crop = image[y0:y1c, x0:x1c]
    pads = (y0 - top, top + s - y1c, x0 - left, left + s - x1c)
    return cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE) if any(pads) else crop


def resize_face(img: np.ndarray, size: int, source_size: int = 0) -> np.ndarray:
    """Resize a face crop to size x size, no sharper than faces of side `source_size`.

    A crop larger than `source_size` (when that is below `size`) is first reduced to it: a network that
    learned from small faces brought up to its input size (FER2013's 48 px at 96) then sees a real face
    with the detail its training faces had, not finer detail it never learned to read.

    Args:
        img: uint8 (h, w) or (h, w, c) crop.
        size: Output side.
        source_size: Side of the training faces; 0 for no limit.

    Example:
        >>> resize_face(np.zeros((300, 300), np.uint8), 96, source_size=48).shape
        (96, 96)
    """
    if 0 < source_size < min(max(img.shape[:2]), size):
        img = cv2.resize(img, (source_size, source_size), interpolation=cv2.INTER_AREA)
    if img.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    return img


#: Side of FER2013's faces, on which every emotion checkpoint without a recorded `source_size` was trained.
FER2013_SIZE = 48


@dataclass(frozen=True)
class Preprocess:
    """How a face crop becomes a model input.

    Attributes:
        input_size: Side of the square input in pixels.
        in_chans: 1 (grey) or 3 (RGB).
        mean: Per-channel mean subtracted after scaling to [0, 1].
        std: Per-channel std divided by after subtracting the mean.
        grey: Colour faces are made grey first, then copied into the `in_chans` channels: a network trained
            on grey faces (FER2013) sees real colour faces as it saw its training data. Checkpoints without
            the key were all trained on grey faces.
        source_size: Side of the faces the network learned from (the median side of its training crops):
            larger crops are reduced to it before being resized to `input_size` (see resize_face). 0: no
            limit. Checkpoints without the key were all trained on FER2013's 48 px faces.
    """

    input_size: int = 48
    in_chans: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    grey: bool = True
    source_size: int = 0

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(
            input_size=int(d["input_size"]),
            in_chans=int(d["in_chans"]),
            mean=tuple(float(x) for x in d["mean"]),
            std=tuple(float(x) for x in d["std"]),
            grey=bool(d.get("grey", True)),
            source_size=int(d.get("source_size", FER2013_SIZE)),
        )

    def prepare_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Resize and colour-convert crops into one uint8 batch.

        Args:
            crops: BGR uint8 (h, w, 3) or grey uint8 (h, w) face crops of any size (made grey if `grey`,
                no sharper than `source_size`).

        Returns:
            uint8 array (n, input_size, input_size, in_chans).
        """
        s = self.input_size
        out = np.empty((len(crops), s, s, self.in_chans), np.uint8)
        for i, crop in enumerate(crops):
            if crop.ndim == 3 and (self.grey or self.in_chans == 1):
                crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
            crop = resize_face(crop, s, self.source_size)
            if crop.ndim == 2 and self.in_chans == 3:
                crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
            elif crop.ndim == 3:
                crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
            out[i] = crop.reshape(s, s, self.in_chans)
        return out

    def face_inputs(self, image: np.ndarray, boxes: np.ndarray, margin: float | np.ndarray) -> np.ndarray:
        """The model inputs for face boxes of one frame: box -> margin -> square crop -> resize and colour.

        The one path from a box to what the head sees, shared by the pipeline (`EmotionClassifier`), training
        (crops cut from the detector's boxes, `train.face_crops`) and evaluation.

        Args:
            image: BGR uint8 (H, W, 3) or grey (H, W) frame.
            boxes: (n, 4) face boxes in frame pixels.
            margin: Context on each side as a fraction of the box's longer side, one for all or one per box.

        Returns:
            uint8 (n, input_size, input_size, in_chans); `normalize` makes it the network's input.
        """
        margins = np.broadcast_to(np.asarray(margin, np.float64), (len(boxes),))
        return self.prepare_crops([square_crop(image, b, float(m)) for b, m in zip(boxes, margins)])

    def normalize(self, batch_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (n, h, w, c) or (n, c, h, w) tensor -> normalised float32 (n, c, h, w)."""
        x = batch_u8
        if x.shape[-1] == self.in_chans and x.shape[1] != self.in_chans:
            x = x.permute(0, 3, 1, 2)
        return self.standardize(x.float().div_(255.0))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """float (n, c, h, w) in [0, 1] -> (x - mean) / std."""
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def tta_views(x: torch.Tensor, mode: str = "none", zoom: float = 1.125) -> list[torch.Tensor]:
    """Views of a normalised batch (n, c, s, s) for test-time augmentation.

    Args:
        x: The batch.
        mode: none (x), flip (x and its mirror) or multicrop (the mirror pair of the centre and the four
            corner crops of x zoomed by `zoom`, plus x and its mirror: 12 views).
        zoom: Multicrop zoom before cropping back to s x s.

    Example:
        >>> len(tta_views(torch.zeros(2, 1, 48, 48), "multicrop"))
        12
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}: choose one of {TTA_MODES}")
    views = [x]
    if mode == "multicrop":
        s = x.shape[-1]
        big = F.interpolate(x, scale_factor=zoom, mode="bilinear", align_corners=False)
        m = big.shape[-1] - s
        for top, left in ((m // 2, m // 2), (0, 0), (0, m), (m, 0), (m, m)):
            views.append(big[..., top : top + s, left : left + s])
    if mode != "none":
        views += [v.flip(3) for v in views]
    return views
