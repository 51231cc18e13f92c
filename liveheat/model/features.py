"""What one inference returns (Features) and where its map sits on the frame."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


@dataclass
class Features:
    """What one inference returns: a feature map, the class scores, and where the map sits.

    `Backbone(frame)` makes them; `heatmap(features, method)` turns them into a map. A record
    (a dataclass): the constructor takes the attributes below, checks nothing and raises
    nothing.

    Args:
        maps: the (C, h, w) float32 activations.
        logits: the (K,) class scores, or None.
        labels: the K class names, or None.
        layer: the tensor name.
        frame_shape: the frame's (H, W).
        valid: the (y0, y1, x0, x1) cells of the map that cover the frame.
        cam_weights: the (K, C) classifier weights, or None.
        head_layer: the layer the classifier pools, or None.

    Attributes:
        maps: (C, h, w) float32, the activations of `layer`.
        logits: (K,) float32 class scores, or None for a model without a classifier.
        labels: the K class names, or None when the model does not name them.
        layer: the tensor the maps come from.
        frame_shape: (H, W) of the frame.
        valid: the (y0, y1, x0, x1) part of the map grid that covers the frame, in cells
            (letterbox padding and the overhang of a map rounded up past the input are left
            out, see `effective_stride`; may be fractional).
        cam_weights: (K, C) classifier weights when `layer` is the one it pools, else None;
            read-only (one array shared by every call).
        head_layer: the layer the classifier pools (where `cam` works), or None.

    Examples:
        >>> from liveheat import Backbone, open_source
        >>> from liveheat.sources import BUNDLED_CLIP
        >>> with open_source(BUNDLED_CLIP) as src:
        ...     frame = next(f.image for f in src if f.index == 55)
        >>> feats = Backbone()(frame)
        >>> feats.maps.shape, feats.frame_shape, feats.valid
        ((1280, 7, 7), (720, 1280), (0.0, 7.0, 0.0, 7.0))
        >>> [(i, name) for i, name, p in feats.top(2)]
        [(146, 'albatross, mollymawk'), (150, 'sea lion')]
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
        """Softmax of the logits.

        Returns:
            (K,) float32 probabilities summing to 1, or None for a model without classifier.

        Examples:
            >>> feats = Features(np.zeros((1, 1, 1), np.float32), np.log([1, 3], dtype=np.float32),
            ...                  None, "x", (1, 1), (0, 1, 0, 1), None)
            >>> feats.probs().round(3).tolist()
            [0.25, 0.75]
        """
        if self.logits is None:
            return None
        z = self.logits.astype(np.float32) - np.float32(self.logits.max())
        e = np.exp(z)
        return e / e.sum()

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The k most likely classes, best first.

        Args:
            k: how many (at most the number of classes).

        Returns:
            (index, name, probability) for each; names from `label`; [] without classifier.

        Examples:
            >>> logits = np.log([1, 3, 4], dtype=np.float32)
            >>> feats = Features(np.zeros((1, 1, 1), np.float32), logits, ["cat", "dog", "hay"],
            ...                  "x", (1, 1), (0, 1, 0, 1), None)
            >>> [(i, name, round(p, 3)) for i, name, p in feats.top(2)]
            [(2, 'hay', 0.5), (1, 'dog', 0.375)]
        """
        p = self.probs()
        if p is None:
            return []
        k = max(0, min(int(k), p.size))
        idx = np.argsort(-p, kind="stable")[:k]
        return [(int(i), self.label(int(i)), float(p[i])) for i in idx]

    def label(self, index: int) -> str:
        """The class name of `index`.

        Args:
            index: a class index.

        Returns:
            Its name, or the index as text when the model has no names (or none that far).

        Examples:
            >>> feats = Features(np.zeros((1, 1, 1), np.float32), np.zeros(2, np.float32),
            ...                  ["cat", "dog"], "x", (1, 1), (0, 1, 0, 1), None)
            >>> feats.label(1), feats.label(7)
            ('dog', '7')
        """
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)


class LayerInfo(NamedTuple):
    """One tensor that can serve as a feature map: name, producing op, shape (symbolic dims).

    Examples:
        >>> LayerInfo("features", "Clip", ("batch", 1280, "height_32", "width_32")).op_type
        'Clip'
    """

    name: str
    op_type: str
    shape: tuple


class Geometry(NamedTuple):
    """How a frame was fitted into the input: frame (H, W), input (H, W), pads (t, b, l, r).

    Examples:
        >>> Geometry((720, 1280), (224, 224), (49, 49, 0, 0)).pad
        (49, 49, 0, 0)
    """

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

    Args:
        size: the input's size along the axis, in pixels.
        cells: the map's size along the same axis.

    Returns:
        Input pixels per cell: a whole number for a downsampling map, else the ratio (1 when
        either size is not positive).

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
