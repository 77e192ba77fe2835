"""Offline augmentation of face crops, as the original system did: mirror, rotation, blur, brightness."""

from __future__ import annotations

import zlib

import cv2
import numpy as np


def augmented_copies(crop: np.ndarray, n: int, key: str, seed: int) -> list[np.ndarray]:
    """`n` randomly augmented copies of a crop, reproducible from (key, seed).

    Each copy: mirror (p 0.5), rotation within +-12 degrees, Gaussian blur (p 0.3, sigma 0.5-1.2),
    brightness x0.75-1.25.
    """
    out = []
    h, w = crop.shape[:2]
    for k in range(n):
        rng = np.random.default_rng([zlib.crc32(key.encode()), seed, k])
        img = crop[:, ::-1] if rng.random() < 0.5 else crop
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-12, 12)), 1.0)
        img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.2)))
        img = np.clip(img.astype(np.float32) * rng.uniform(0.75, 1.25), 0, 255).astype(np.uint8)
        out.append(img)
    return out
