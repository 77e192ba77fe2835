"""Stateless learning-rate schedule: the rate is a function of the step, so resuming is free."""

from __future__ import annotations

import math


def warmup_cosine(
    step: int, total_steps: int, warmup_steps: int, base_lr: float, final_ratio: float
) -> float:
    """Learning rate at `step`: linear warmup from 0, then cosine decay to base_lr * final_ratio.

    Example:
        >>> warmup_cosine(0, 100, 10, 0.1, 0.0), warmup_cosine(100, 100, 10, 0.1, 0.0)
        (0.01, 0.0)
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return base_lr * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
