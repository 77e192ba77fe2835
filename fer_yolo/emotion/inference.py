"""Emotion-head inference: the test-time-augmented forward pass of the pipeline's classifier
(`mean_softmax`), and on arrays of face crops, as training's validation, its distillation teachers and
`fer-yolo eval emotion` run it (`predict_logits`; evaluation never imports training)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from fer_yolo.data.crops import is_grey
from fer_yolo.emotion.preprocess import Preprocess, tta_views
from fer_yolo.utils.device import cpu_has_fast_bf16


def autocast_for(device: torch.device, amp: bool) -> torch.autocast:
    """fp16 autocast on CUDA, bf16 on CPUs that compute it natively, otherwise off."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16, enabled=amp)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp and cpu_has_fast_bf16())


def mean_softmax(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tta: str) -> torch.Tensor:
    """Softmax (n, k) of `forward` (a normalised batch -> logits), averaged over the TTA views of `x`
    (n, c, s, s); all views go through `forward` in one call."""
    views = tta_views(x, tta)
    logits = forward(torch.cat(views) if len(views) > 1 else views[0]).float()
    return logits.softmax(1).view(len(views), len(x), -1).mean(0)


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    images_u8: np.ndarray,
    pre: Preprocess,
    device: torch.device,
    batch: int = 256,
    amp: bool = False,
    tta: str = "none",
) -> np.ndarray:
    """Logits (n, k) float32 for uint8 crops (n, s, s, c); with `tta` the log of the mean softmax over views.

    `tta` is one of TTA_MODES (none, flip, multicrop): see emotion.preprocess.tta_views. Colour crops reach a
    head trained on grey faces grey, as in the pipeline (`Preprocess.grey`).
    """
    if pre.grey and images_u8.shape[-1] == 3 and not is_grey(images_u8):
        # only made grey: the crops are read at the input size and sharpness already; RGB -> BGR as it takes
        images_u8 = replace(pre, source_size=0).prepare_crops(list(images_u8[..., ::-1]))
    model.eval()
    out = []
    for i in range(0, len(images_u8), batch):
        x = pre.normalize(torch.from_numpy(images_u8[i : i + batch]).to(device))
        x = x.contiguous(memory_format=torch.channels_last)
        with autocast_for(device, amp):
            logits = model(x).float() if tta == "none" else mean_softmax(model, x, tta).log()
        out.append(logits.cpu())
    return torch.cat(out).numpy()
