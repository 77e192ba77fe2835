"""YOLO detection datasets: label lines and the data.yaml ultralytics trains on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from fer_yolo.utils.io import write_text


def label_lines(xyxy: np.ndarray, class_ids: np.ndarray, resolution_wh: tuple[int, int]) -> str:
    """YOLO label text: one 'class xc yc w h' line per box, normalised and clipped to the image."""
    w, h = resolution_wh
    xyxy = np.clip(np.asarray(xyxy, np.float64).reshape(-1, 4), 0, [w, h, w, h])
    rows = []
    for (x1, y1, x2, y2), c in zip(xyxy, class_ids):
        if x2 > x1 and y2 > y1:
            xywhn = ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h)
            rows.append(f"{int(c)} " + " ".join(f"{v:.6f}" for v in xywhn))
    return "".join(line + "\n" for line in rows)


def write_data_yaml(root: Path, splits: list[str], names: list[str]) -> tuple[Path, str | None]:
    """Write root/data.yaml naming images/<split> folders; no `path:` key, so it resolves beside itself.

    ultralytics refuses a data.yaml without `val`: with no val images, `val` names the training images
    and the returned warning says so (else None).
    """
    data = {s: f"images/{s}" for s in ("train", "val", "test") if s in splits}
    warning = None
    if "val" not in data and "train" in data:
        data["val"] = data["train"]
        warning = (
            "no val images: data.yaml's val names the training images, so validation metrics will be "
            "optimistic; convert more images or raise the val share of --ratios"
        )
    data = {k: data[k] for k in ("train", "val", "test") if k in data}
    data["names"] = dict(enumerate(names))
    path = root / "data.yaml"
    write_text(path, yaml.safe_dump(data, sort_keys=False))
    return path, warning
