"""Plots of evaluation results, written atomically as PNG files."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from fer_yolo.utils.io import atomic_path

#: The WIDER FACE difficulty settings, one panel each.
PR_SETTINGS: tuple[str, ...] = ("easy", "medium", "hard")


def plot_pr_curves(
    results: Mapping[str, Mapping], out_png: str | os.PathLike, settings: tuple[str, ...] = PR_SETTINGS
) -> None:
    """Draw precision-recall curves of several detectors, one panel per difficulty setting.

    Args:
        results: Detector name -> result of :func:`fer_yolo.evaluation.widerface_ap.evaluate` (uses
            its ``"pr"`` curves and per-setting AP).
        out_png: PNG file to write (parent folders are created).
        settings: Settings to draw, left to right.
    """
    # A bare Figure on the Agg canvas: no pyplot state, no GUI backend, whatever the caller uses.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(settings), 4.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(settings), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        for name, result in results.items():
            curve = {k: np.asarray(v) for k, v in result["pr"][setting].items()}
            found = curve["recall"] > 0  # drop thresholds above every true positive (precision undefined/0)
            label = f"{name} (AP {result[setting]:.3f})"
            ax.plot(curve["recall"][found], curve["precision"][found], lw=1.5, label=label)
        ax.set(title=setting, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
