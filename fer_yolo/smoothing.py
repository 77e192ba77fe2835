"""Per-track smoothing of emotion probabilities, so labels do not flicker from frame to frame."""

from __future__ import annotations

import numpy as np

from fer_yolo.config import pipeline_default


class EmaSmoother:
    """Exponential moving average of each track's probabilities, weighted by elapsed time.

    p_t = w * p_prev + (1 - w) * p_new with w = exp(-dt / tau): a frame dropped on a live source counts
    as elapsed time, and a 30 fps and a 5 fps source settle equally fast.

    Args:
        tau_s: Time constant in seconds (0 turns smoothing off; default: pipeline.smoothing_s).
        max_age_s: Tracks unseen for this long are forgotten.

    Example:
        >>> smoother = EmaSmoother(tau_s=0.3)  # doctest: +SKIP
        >>> probs = smoother.smooth(tracker_ids, probs, t_s=frame.t_s)  # doctest: +SKIP
    """

    def __init__(self, tau_s: float | None = None, max_age_s: float = 5.0) -> None:
        self.tau_s, self.max_age_s = pipeline_default(tau_s, "smoothing_s"), max_age_s
        self._state: dict[int, tuple[np.ndarray, float]] = {}

    def reset(self) -> None:
        """Forget every track."""
        self._state.clear()

    def smooth(self, tracker_ids: np.ndarray, probs: np.ndarray, t_s: float) -> np.ndarray:
        """Smoothed (n, k) probabilities for the tracks seen at time `t_s` (ids < 0 pass through)."""
        out = probs.copy()
        for i, tid in enumerate(np.asarray(tracker_ids).tolist()):
            if tid < 0 or self.tau_s <= 0:
                continue
            prev = self._state.get(tid)
            if prev is not None:
                w = float(np.exp(-max(t_s - prev[1], 0.0) / self.tau_s))
                out[i] = w * prev[0] + (1 - w) * probs[i]
            self._state[tid] = (out[i], t_s)
        self._state = {k: v for k, v in self._state.items() if t_s - v[1] <= self.max_age_s}
        return out
