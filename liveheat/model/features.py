"""What one inference returns (Features) and where its map sits on the frame."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass
class Features:
    """What one inference returns: a feature map, the class scores, and where the map sits.

    `maps` is (C, h, w) float32 from `layer`; `valid` is the (y0, y1, x0, x1) part of the
    map grid that covers the frame (letterbox padding and the overhang of a map rounded up
    past the input excluded, see `effective_stride`; may be fractional). `cam_weights` is
    read-only (one array shared by every call).

    Examples:
        >>> feats = Backbone()(frame)                      # doctest: +SKIP
        >>> feats.maps.shape, feats.top(1)                 # doctest: +SKIP
        ((1280, 7, 7), [(285, 'Egyptian cat', 0.62)])
    """

    maps: np.ndarray
    logits: np.ndarray | None
    labels: list[str] | None
    layer: str
    frame_shape: tuple[int, int]
    valid: tuple[float, float, float, float]
    cam_weights: np.ndarray | None
    head_layer: str | None = None  # the layer the classifier head pools (where CAM works)

    def probs(self) -> np.ndarray | None:
        """Softmax of the logits (float32, sums to 1), or None without a classifier.

        Examples:
            >>> feats.probs().sum()                        # doctest: +SKIP
            1.0
        """
        if self.logits is None:
            return None
        z = self.logits.astype(np.float32) - np.float32(self.logits.max())
        e = np.exp(z)
        return e / e.sum()

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The k most likely classes as (index, name, probability), best first.

        Examples:
            >>> Backbone()(coffee).top(1)                  # doctest: +SKIP
            [(967, 'espresso', 0.96)]
        """
        p = self.probs()
        if p is None:
            return []
        k = max(0, min(int(k), p.size))
        idx = np.argsort(-p, kind="stable")[:k]
        return [(int(i), self.label(int(i)), float(p[i])) for i in idx]

    def label(self, index: int) -> str:
        """The class name of `index` (its number as text when the model has no names)."""
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)


class LayerInfo(NamedTuple):
    """One tensor that can serve as a feature map: name, producing op, shape (symbolic dims)."""

    name: str
    op_type: str
    shape: tuple


class Geometry(NamedTuple):
    """How a frame was fitted into the input: frame (H, W), input (H, W), pads (t, b, l, r)."""

    frame_shape: tuple[int, int]
    input_shape: tuple[int, int]
    pad: tuple[int, int, int, int]


# ---------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=256)
def effective_stride(size: int, cells: int) -> float:
    """Input pixels per map cell along one axis, from the input size and the map size.

    CNN maps have ceil(size / stride) cells (padded convs) or floor (unpadded), so the ratio
    alone misleads when the size is not a multiple of the stride: the whole-number strides that
    give `cells` either way are candidates; a power of two wins (CNN strides), else the one
    nearest the ratio. Maps as big as the input or bigger (upsampled) keep the plain ratio.

    Examples:
        >>> effective_stride(224, 7), effective_stride(300, 10), effective_stride(300, 19)
        (32, 32, 16)
        >>> effective_stride(300, 21), effective_stride(64, 128)   # ViT patch 14; upsampled
        (14, 0.5)
    """
    if size <= 0 or cells <= 0:
        return 1
    ratio = size / cells
    if ratio <= 1:
        return 1 if size == cells else ratio
    lo, hi = max(1, int(ratio / 2)), int(ratio * 2) + 1
    fits = [s for s in range(lo, hi + 1) if -(-size // s) == cells or size // s == cells]
    if not fits:
        return ratio
    powers = [s for s in fits if s & (s - 1) == 0]
    return min(powers or fits, key=lambda s: (abs(s - ratio), s))
