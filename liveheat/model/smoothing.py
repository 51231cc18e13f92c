"""Temporal smoothing of maps on video: an EMA that resets at scene cuts."""

from __future__ import annotations

import math

import numpy as np

from liveheat.errors import LiveheatError
from liveheat.model.features import Features


class TemporalSmoother:
    """Exponential moving average of video heatmaps and of their normalisation range.

    `factor` in [0, 1) is the weight of the past (0 = off). `.vmin/.vmax` follow the maps'
    range the same way: pass them to `overlay(norm="fixed", vmin=..., vmax=...)` so the
    colours do not pump. A scene cut restarts the average, as does a change of map size.
    Cuts are found by correlation below `cut_threshold` (None: never): of the pooled
    feature vectors when `features` are passed (reliable: consecutive frames of a shot
    correlate > 0.9, different scenes ~0), else of the map with the running map (weaker:
    CNN maps share a centre bias, and a CAM changes when the top-1 class changes).

    Args:
        factor: the weight of the past, in [0, 1); 0 turns smoothing off.
        cut_threshold: a correlation below this is a scene cut; None: never cut.

    Raises:
        LiveheatError: `factor` outside [0, 1).

    Examples:
        >>> from liveheat import Backbone, heatmap, open_source, overlay
        >>> from liveheat.sources import BUNDLED_CLIP
        >>> bb, smooth = Backbone(), TemporalSmoother(0.6)
        >>> with open_source(BUNDLED_CLIP) as src:
        ...     for frame, _ in zip(src, range(3)):
        ...         feats = bb(frame.image)
        ...         heat = smooth(heatmap(feats), features=feats)
        ...         lo, hi = smooth.vmin, smooth.vmax          # the range, smoothed too
        ...         out = overlay(frame.image, heat, norm="fixed", vmin=lo, vmax=hi)
        >>> out.shape, heat.shape, smooth.cuts
        ((720, 1280, 3), (7, 7), 0)
    """

    def __init__(self, factor: float = 0.6, *, cut_threshold: float | None = 0.5) -> None:
        factor = float(factor)
        if not 0.0 <= factor < 1.0:
            raise LiveheatError(f"bad smoothing factor {factor}; expected 0 <= factor < 1")
        self.factor = factor
        self.cut_threshold = cut_threshold
        self.cuts = 0  # scene cuts seen (resets triggered by the correlation test)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next map is passed through unchanged.

        Examples:
            >>> smooth = TemporalSmoother(0.5)
            >>> _ = smooth(np.zeros((2, 2), np.float32))
            >>> smooth.reset()
            >>> smooth(np.ones((2, 2), np.float32)).tolist()
            [[1.0, 1.0], [1.0, 1.0]]
        """
        self._heat: np.ndarray | None = None
        self._pooled: np.ndarray | None = None
        self.vmin: float | None = None
        self.vmax: float | None = None

    def __call__(self, heat: np.ndarray, features: Features | None = None) -> np.ndarray:
        """Blend `heat` into the running map.

        The first map, one after a cut and one of another size pass through unchanged.

        Args:
            heat: this frame's map (NaN counts as 0).
            features: this frame's Features: cuts are then found on the pooled features.

        Returns:
            The smoothed map, float32, the shape of `heat`, a new array.

        Examples:
            >>> smooth = TemporalSmoother(0.5)
            >>> smooth(np.zeros((2, 2), np.float32)).tolist()
            [[0.0, 0.0], [0.0, 0.0]]
            >>> smooth(np.ones((2, 2), np.float32)).tolist(), smooth.vmax
            ([[0.5, 0.5], [0.5, 0.5]], 0.5)
            >>> ramp = np.arange(4, dtype=np.float32).reshape(2, 2)
            >>> _ = smooth(ramp); smooth(-ramp).tolist(), smooth.cuts   # a cut: no blend
            ([[-0.0, -1.0], [-2.0, -3.0]], 1)
        """
        heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
        lo, hi = float(heat.min()), float(heat.max())
        pooled = None if features is None else features.maps.mean(axis=(1, 2))
        prev = self._heat
        if prev is not None and prev.shape != heat.shape:
            prev = None
        elif prev is not None and self._is_cut(prev, heat, pooled):
            self.cuts += 1
            prev = None
        self._pooled = pooled
        if prev is None or self.factor == 0.0:
            self._heat = heat.copy()
            self.vmin, self.vmax = lo, hi
            return heat
        f = np.float32(self.factor)
        out = prev * f
        out += heat * (np.float32(1) - f)
        self._heat = out
        self.vmin = self.factor * self.vmin + (1 - self.factor) * lo
        self.vmax = self.factor * self.vmax + (1 - self.factor) * hi
        return out.copy()

    def _is_cut(self, prev: np.ndarray, heat: np.ndarray, pooled: np.ndarray | None) -> bool:
        if self.cut_threshold is None:
            return False
        if pooled is not None and self._pooled is not None and pooled.shape == self._pooled.shape:
            r = correlation(self._pooled, pooled)
        else:
            r = correlation(prev, heat)
        return r is not None and r < self.cut_threshold


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two arrays of one size; None when either is constant.

    Examples:
        >>> correlation(np.arange(4.0), np.arange(4.0) * 2 + 1)
        1.0
    """
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return None if den == 0.0 else float(a @ b) / den
