"""One frame coercion: anything image-like to uint8 BGR."""

from __future__ import annotations

import cv2
import numpy as np


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 BGR HxWx3 from whatever a decoder gave (gray, BGRA, 16-bit)."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image
