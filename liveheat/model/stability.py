"""Maps that hold still on video: scene cuts, a held CAM target, a followed sign, a steady scale.

Each piece is small state over the frames of one video, reset at a scene cut:

- `CutDetector`: a cut where the pooled features of two inferred frames stop correlating.
- `TargetLock`: the class a CAM explains, held with hysteresis (another class must lead it by
  a clear margin for several inferred frames in a row, or a cut comes).
- `SignFollower`: methods whose sign is arbitrary (eigen) keep the previous frame's sign.
- `SteadyScale`: the colour range: grows at once to take in more heat, shrinks slowly.
- `OneEuro`: an adaptive low-pass for maps (smooth when still, quick when the heat moves).
"""

from __future__ import annotations

import math

import numpy as np

from liveheat.errors import LiveheatError
from liveheat.model.features import Features
from liveheat.model.smoothing import TemporalSmoother, correlation


class CutDetector:
    """Scene cuts from the pooled feature vectors of consecutive inferred frames.

    Frames of one shot correlate above 0.9 on the bundled model; different scenes near 0.
    The first frame counts as a cut (everything starts there).

    Args:
        threshold: a correlation below this is a cut.

    Examples:
        >>> cuts = CutDetector()
        >>> a, b = np.ones((4, 2, 2)), np.zeros((4, 2, 2))
        >>> a[0], b[3] = 5, 5
        >>> [cuts.pooled(a.mean(axis=(1, 2))), cuts.pooled(a.mean(axis=(1, 2))),
        ...  cuts.pooled(b.mean(axis=(1, 2)))]
        [True, False, True]
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        """The next frame starts a shot."""
        self._last: np.ndarray | None = None

    def __call__(self, features: Features) -> bool:
        """True when `features` start a new shot (a cut, or the first frame)."""
        return self.pooled(features.maps.mean(axis=(1, 2)))

    def pooled(self, vector: np.ndarray) -> bool:
        """The same from a pooled feature vector."""
        last, self._last = self._last, np.asarray(vector, np.float32)
        if last is None or last.shape != self._last.shape:
            return True
        r = correlation(last, self._last)
        return r is not None and r < self.threshold


class TargetLock:
    """The class a CAM explains on video, held with hysteresis.

    The held class changes only when another class has led it by `margin` (in probability)
    on `frames` consecutive inferred frames, or at a cut, where the new shot's top-1 is taken.

    Args:
        margin: how far ahead (probability) a challenger must be.
        frames: for how many inferred frames in a row.

    Examples:
        >>> lock = TargetLock(margin=0.1, frames=3)
        >>> p = lambda a, b: np.array([a, b, 1 - a - b])
        >>> [lock(p(0.5, 0.3)), lock(p(0.3, 0.45)), lock(p(0.3, 0.45)), lock(p(0.3, 0.45))]
        [0, 0, 0, 1]
    """

    def __init__(self, margin: float = 0.1, frames: int = 5) -> None:
        if not 0 <= margin < 1 or frames < 1:
            raise LiveheatError(f"bad target lock margin={margin} frames={frames}")
        self.margin = float(margin)
        self.frames = int(frames)
        self.changes = 0  # switches of the held class (cuts not counted)
        self.reset()

    def reset(self) -> None:
        """Forget the held class: the next frame's top-1 is taken."""
        self.held: int | None = None
        self._challenger: int | None = None
        self._streak = 0

    def __call__(self, probs: np.ndarray, *, cut: bool = False) -> int:
        """The class to explain for a frame with these class probabilities."""
        top = int(np.argmax(probs))
        if self.held is None or cut or self.held >= probs.size:
            self.held, self._challenger, self._streak = top, None, 0
            return top
        if top != self.held and float(probs[top] - probs[self.held]) >= self.margin:
            self._streak = self._streak + 1 if top == self._challenger else 1
            self._challenger = top
            if self._streak >= self.frames:
                self.held, self._challenger, self._streak = top, None, 0
                self.changes += 1
        else:
            self._challenger, self._streak = None, 0
        return self.held


class SignFollower:
    """Keep a sign-arbitrary map's sign from frame to frame within a shot.

    On the first frame and after a cut the map keeps the sign its method gave it (its anchor);
    after that a map that correlates negatively with the previous one is turned over.

    Examples:
        >>> follow = SignFollower()
        >>> m = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
        >>> follow(m).tolist(), follow(-m).tolist()
        ([[0.0, 1.0], [2.0, 3.0]], [[0.0, 1.0], [2.0, 3.0]])
    """

    def __init__(self) -> None:
        self.flips = 0
        self.reset()

    def reset(self) -> None:
        """The next map decides its own sign."""
        self._last: np.ndarray | None = None

    def __call__(self, heat: np.ndarray, *, cut: bool = False) -> np.ndarray:
        last = self._last
        if not cut and last is not None and last.shape == heat.shape:
            r = correlation(last, heat)
            if r is not None and r < 0:
                heat = -heat
                self.flips += 1
        self._last = heat
        return heat


class SteadyScale:
    """A colour range that holds still within a shot, so equal heat has equal colour.

    It takes in more heat at once (the top never clips) and lets go slowly (`release` of the
    gap per frame), and starts from the map's own range at a cut.

    Args:
        release: the share of the gap closed per frame when a map's range is narrower.

    Examples:
        >>> scale = SteadyScale(release=0.5)
        >>> scale(np.array([0.0, 10.0])), scale(np.array([0.0, 4.0])), scale(np.array([0.0, 20.0]))
        ((0.0, 10.0), (0.0, 7.0), (0.0, 20.0))
    """

    def __init__(self, release: float = 0.05) -> None:
        if not 0 < release <= 1:
            raise LiveheatError(f"bad release {release}; expected a number in (0, 1]")
        self.release = float(release)
        self.reset()

    def reset(self) -> None:
        """The next map sets the range."""
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, heat: np.ndarray, *, cut: bool = False) -> tuple[float, float]:
        finite = heat[np.isfinite(heat)]
        if finite.size == 0:
            return (self.lo, self.hi) if self.lo is not None else (0.0, 1.0)
        lo, hi = float(finite.min()), float(finite.max())
        if cut or self.lo is None:
            self.lo, self.hi = lo, hi
        else:
            r = self.release
            self.lo = lo if lo < self.lo else self.lo + r * (lo - self.lo)
            self.hi = hi if hi > self.hi else self.hi + r * (hi - self.hi)
        return self.lo, self.hi


class OneEuro:
    """The one-euro filter (Casiez et al., CHI 2012) on every cell of a map.

    Frame-rate units: a cutoff is in cycles per frame. When the heat is still the cutoff is
    `min_cutoff` (strong smoothing); when it moves, the cutoff rises with the speed (`beta`),
    so the map follows motion with little lag.

    Args:
        min_cutoff: the cutoff of a still map (cycles per frame).
        beta: how fast the cutoff rises with the map's speed (relative to its range).
        d_cutoff: the cutoff used to smooth the speed itself.

    Examples:
        >>> f = OneEuro()
        >>> f(np.zeros((2, 2), np.float32)).tolist()
        [[0.0, 0.0], [0.0, 0.0]]
    """

    def __init__(self, min_cutoff: float = 0.05, beta: float = 4.0, d_cutoff: float = 0.2):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """The next map passes unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau)

    def __call__(self, heat: np.ndarray, *, cut: bool = False) -> np.ndarray:
        x = np.nan_to_num(np.asarray(heat, np.float32))
        if cut or self._x is None or self._x.shape != x.shape:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x
        span = float(x.max() - x.min()) or 1.0
        dx = (x - self._x) / span
        a_d = self._alpha(self.d_cutoff)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        a = self._alpha(self.min_cutoff + self.beta * np.abs(self._dx))
        self._x = (a * x + (1 - a) * self._x).astype(np.float32)
        return self._x.copy()


def euro_cutoff(smooth: float) -> float:
    """The one-euro `min_cutoff` that smooths a still map as much as an EMA of weight `smooth`.

    Examples:
        >>> round(euro_cutoff(0.75), 4)
        0.0531
    """
    return (1.0 - smooth) / (2 * math.pi * smooth)


class Stabilizer:
    """All of the above for one video: from Features to (raw map, drawn map, target, cut, scale).

    Call it once per inferred frame, in order. A change of method, target or smoothing starts
    afresh (the past of another map means nothing); so does a detected cut.

    Args:
        release: how fast the steady colour range lets go (`SteadyScale`).

    Examples:
        >>> from liveheat.model.backbone import Backbone
        >>> import liveheat
        >>> bb, stab = Backbone(input_size=128), Stabilizer()
        >>> with liveheat.open_source(liveheat.bundled_clip()) as src:
        ...     out = [stab(bb(f.image), "cam", smooth=0.5) for f, _ in zip(src, range(3))]
        >>> [o.cut for o in out], out[0].raw.shape
        ([True, False, False], (4, 4))
    """

    def __init__(self, *, release: float = 0.05) -> None:
        self.cuts = CutDetector()
        self.target_lock = TargetLock(margin=0.15, frames=8)
        self.sign = SignFollower()
        self.scale = SteadyScale(release)
        self.euro = OneEuro()
        self.reset()

    def reset(self) -> None:
        """A new video starts."""
        self.cuts.reset()
        self._restart()
        self._key: tuple | None = None

    def _restart(self) -> None:
        self.target_lock.reset()
        self.sign.reset()
        self.scale.reset()
        self.euro.reset()
        self._ema: TemporalSmoother | None = None

    def __call__(
        self,
        features: Features,
        method: str,
        target: int | str | None = "auto",
        *,
        smooth: float = 0.0,
        smoother: str = "euro",
        follow_sign: bool = True,
    ) -> Stable:
        """One inferred frame.

        Args:
            features: the frame's Features.
            method: the heatmap method.
            target: "auto" (held with hysteresis), "top1" or None (each frame's top class), or
                a class index or name.
            smooth: the smoothing strength in [0, 1) (0: off): an EMA's weight of the past, or
                the one-euro filter tuned to smooth a still map as much.
            smoother: "euro" or "ema".
            follow_sign: keep eigen's sign within a shot.

        Returns:
            A `Stable` record.
        """
        from liveheat.model.heatmaps import heatmap, target_index

        cut = self.cuts(features)
        key = (method, target, smooth, smoother)
        if key != self._key:  # another map: its past means nothing
            self._key = key
            self._restart()
        if cut:
            self._restart()
        fixed = target not in (None, "auto", "top1")
        index = None
        if fixed:
            index = target_index(features, target)
        elif method == "cam" and features.logits is not None:
            probs = features.probs()
            index = self.target_lock(probs, cut=cut) if target == "auto" else int(probs.argmax())
        raw = heatmap(features, method=method, target=index if (fixed or method == "cam") else None)
        if follow_sign and method == "eigen":
            raw = self.sign(raw, cut=cut)
        heat = self._smooth(raw, smooth, smoother, cut)
        lo, hi = self.scale(heat, cut=cut)
        return Stable(raw=raw, heat=heat, target=index, cut=cut, scale=(lo, hi))

    def _smooth(self, raw: np.ndarray, smooth: float, smoother: str, cut: bool) -> np.ndarray:
        if smooth <= 0:
            return raw
        if smoother == "euro":
            self.euro.min_cutoff = euro_cutoff(smooth)
            return self.euro(raw, cut=cut)
        if self._ema is None or self._ema.factor != smooth:
            self._ema = TemporalSmoother(smooth, cut_threshold=None)  # cuts are found here
        if cut:
            self._ema.reset()
        return self._ema(raw)


class Stable:
    """What `Stabilizer` made of one inferred frame: `raw` and `heat` (as drawn) maps, the
    class `target` explained (None: none), whether it started a shot (`cut`), and the steady
    colour range `scale` (low, high)."""

    __slots__ = ("raw", "heat", "target", "cut", "scale")

    def __init__(self, *, raw, heat, target, cut, scale) -> None:
        self.raw, self.heat, self.target, self.cut, self.scale = raw, heat, target, cut, scale
