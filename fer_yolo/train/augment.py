"""Batched augmentation of face crops on the training device (no per-image Python loop).

Crops arrive as float (n, c, h, w) in [0, 1]; geometric jitter is one `grid_sample` per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of each augmentation (train_emotion.augment in the config); 0 turns one off.

    Attributes:
        rotate_deg: Max rotation either way, degrees.
        scale: Max relative zoom either way (0.15 = 0.85x to 1.15x).
        translate: Max shift either way, fraction of the side.
        flip: Probability of a horizontal mirror.
        brightness: Max additive brightness change, fraction of full range.
        contrast: Max relative contrast change.
        erase: Probability of erasing one random rectangle (random erasing).
        mix: Probability that a batch is mixed (cutmix or mixup, half each).
    """

    rotate_deg: float
    scale: float
    translate: float
    flip: float
    brightness: float
    contrast: float
    erase: float
    mix: float


def _uniform(n: int, bound: float, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device=device) * 2 - 1) * bound


def geometric(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Random rotation, zoom, shift and mirror of every crop in the batch."""
    n, dev = x.shape[0], x.device
    angle = _uniform(n, math.radians(cfg.rotate_deg), dev)
    zoom = 1 + _uniform(n, cfg.scale, dev)
    mirror = torch.where(torch.rand(n, device=dev) < cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos * mirror, -sin, _uniform(n, 2 * cfg.translate, dev)], 1),
            torch.stack([sin * mirror, cos, _uniform(n, 2 * cfg.translate, dev)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def photometric(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Random brightness and contrast per crop, clamped to [0, 1]."""
    n, dev = x.shape[0], x.device
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    c = (1 + _uniform(n, cfg.contrast, dev)).view(n, 1, 1, 1)
    b = _uniform(n, cfg.brightness, dev).view(n, 1, 1, 1)
    return ((x - mean) * c + mean + b).clamp_(0, 1)


def erase(x: torch.Tensor, p: float) -> torch.Tensor:
    """Random erasing: with probability p per crop, fill one rectangle (2-25% of area) with noise."""
    n, _, h, w = x.shape
    dev = x.device
    area = torch.empty(n, device=dev).uniform_(0.02, 0.25) * h * w
    aspect = torch.exp(torch.empty(n, device=dev).uniform_(math.log(0.3), math.log(3.3)))
    eh = (area * aspect).sqrt().clamp(1, h)
    ew = (area / aspect).sqrt().clamp(1, w)
    y0 = torch.rand(n, device=dev) * (h - eh)
    x0 = torch.rand(n, device=dev) * (w - ew)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (ys >= y0.view(n, 1, 1))
        & (ys < (y0 + eh).view(n, 1, 1))
        & (xs >= x0.view(n, 1, 1))
        & (xs < (x0 + ew).view(n, 1, 1))
        & (torch.rand(n, device=dev) < p).view(n, 1, 1)
    ).unsqueeze(1)
    return torch.where(inside, torch.rand_like(x), x)


def mix(x: torch.Tensor, target: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """With probability p, CutMix or MixUp (half each) the batch with a shuffled copy of itself.

    Args:
        x: float (n, c, h, w).
        target: float (n, k) class distributions.

    Returns:
        Mixed images and targets mixed in the same proportion.
    """
    if torch.rand(()) >= p or x.shape[0] < 2:
        return x, target
    perm = torch.randperm(x.shape[0], device=x.device)
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    if torch.rand(()) < 0.5:  # CutMix: paste a box whose area is (1 - lam)
        h, w = x.shape[2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]


def augment(x: torch.Tensor, target: torch.Tensor, cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """All augmentations in training order. x: float (n, c, h, w) in [0, 1]; target: (n, k)."""
    x = photometric(geometric(x, cfg), cfg)
    if cfg.erase > 0:
        x = erase(x, cfg.erase)
    return mix(x, target, cfg.mix)
