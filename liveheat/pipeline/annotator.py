"""One frame in, one annotated frame out: the model, the map, the smoothing and the drawing.

No threads here: `Runner` wraps an `Annotator` in threads and queues; a script loops over
frames with it. A file annotated by `liveheat run` and an `Annotator` loop over the same frames
draw the same maps.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from liveheat._common.blas import one_blas_thread
from liveheat.draw.hud import draw_hud
from liveheat.draw.overlay import overlay
from liveheat.draw.panels import panels
from liveheat.errors import LiveheatError
from liveheat.model.heatmaps import heatmap
from liveheat.model.stability import Stabilizer
from liveheat.pipeline.preflight import _drawing_kwargs, _parse_target, make_backbone
from liveheat.settings.fields import DRAWING_FIELDS, Settings, hud_parts

LIVE_FIELDS = DRAWING_FIELDS  # a change among these that cannot be drawn is undone


@dataclass(frozen=True, slots=True)
class Annotation:
    """What `Annotator.annotate` made of one frame.

    Attributes:
        image: the drawn frame, uint8 BGR (wider than the frame with `panels`).
        heat: the map as drawn (after smoothing), float32 (h, w); None before the first map.
        raw: the same map before smoothing; None before the first map.
        features: the model's `Features` the map comes from (None before the first).
        target: the class index the map explains (`cam`, and `eigen` anchored on a class
            given as `target`); None where no class applies.
        index: the source index of the frame whose features made the map (-1: none yet).
        fresh: True the first time these features are drawn (a new map, not a reused one).
        scale: the (low, high) map values the colours span (raw map units when `steady`).
        steady: True when `scale` is a fixed range (the shot's steady range, or --norm fixed
            with --vmin/--vmax), not this map's own.
        cut: True when these features start a shot (a scene cut, or the first frame).
        perf: the HUD's performance line when the image leaves it out (`--hud auto` while a
            file is written): a window shows it over the picture, the file never gets it.
        key: (method, target setting) the map was made with.
        note: a live change that could not be drawn and was undone, with the reason.

    Examples:
        >>> import liveheat
        >>> with liveheat.open_source(liveheat.bundled_clip()) as src:
        ...     frame = src.read()
        >>> a = liveheat.Annotator(input_size=128, hud=False).annotate(frame)
        >>> a.image.shape, a.heat.dtype, a.heat.shape == a.raw.shape, a.index, a.cut
        ((720, 1280, 3), dtype('float32'), True, 0, True)
    """

    image: np.ndarray
    heat: np.ndarray | None
    raw: np.ndarray | None
    features: Any
    target: int | None
    index: int
    fresh: bool
    scale: tuple[float, float]
    steady: bool
    key: tuple
    cut: bool = False
    note: str | None = None
    perf: str | None = None


def _range(heat: np.ndarray) -> tuple[float, float]:
    return (float(np.min(heat)), float(np.max(heat))) if heat.size else (0.0, 1.0)


def _changed(snap: Settings, good: Settings) -> dict:
    """The live fields whose value in `snap` differs from `good`: {name: value in snap}."""
    return {k: getattr(snap, k) for k in LIVE_FIELDS if getattr(snap, k) != getattr(good, k)}


def _image_of(frame: Any) -> tuple[np.ndarray, int | None]:
    image = getattr(frame, "image", None)
    if image is not None:  # a sources.Frame
        return image, int(frame.index)
    return frame, None


class Annotator:
    """Annotate frame after frame: run the model, make the map, smooth it, draw it.

    Holds the backbone, the smoothing and scene-cut state, and the render caches; no threads.
    The settings are read on every frame, so a change (`annotator.settings.update(alpha=0.7)`)
    shows on the next one; a live change that cannot be drawn (method `cam` on a layer without
    a classifier, `channel:99999`) is undone and said in `Annotation.note`.

    Args:
        settings: the `Settings` to follow (shared, not copied); default `Settings()`.
        backbone: a ready `Backbone`; default: made from the settings on first use.
        live: frames come from a live source (one inference thread's worth of threads).
        **overrides: setting fields to change first, e.g. `method="eigen"`.

    Raises:
        LiveheatError: an unknown or bad setting in `overrides`.

    Examples:
        >>> import liveheat
        >>> from liveheat.pipeline.annotator import Annotator
        >>> ann = Annotator(method="cam", input_size=160)
        >>> with liveheat.open_source(liveheat.bundled_clip()) as src:
        ...     results = [ann.annotate(f) for f, _ in zip(src, range(3))]
        >>> [r.index for r in results], results[0].image.shape, results[0].heat.shape
        ([0, 1, 2], (720, 1280, 3), (5, 5))
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backbone: Any = None,
        live: bool = False,
        **overrides: Any,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        if overrides:
            self.settings.update(**overrides)
        self._backbone = backbone
        self.live = live
        #: a file is written (the HUD's `auto` parts are then label and bar, no perf)
        self.recording = True
        self._lock = threading.Lock()  # one frame drawn at a time (settings judged once)
        self.reset()

    @property
    def backbone(self) -> Any:
        """The `Backbone` in use (made from the settings on first use)."""
        if self._backbone is None:
            self._backbone = make_backbone(self.settings, live=self.live)
        return self._backbone

    def reset(self) -> None:
        """Forget the past: smoothing, the last features, the caches (a new clip starts)."""
        self._stable = Stabilizer()  # cuts, the target lock, the sign, smoothing, the scale
        self._c_feats: Any = None
        self._c_key: tuple | None = None
        self._c_heat: np.ndarray | None = None
        self._c_raw: np.ndarray | None = None
        self._c_stable: Any = None
        self._c_class: tuple = (None, None, "")
        self._good: Settings | None = None  # the last settings a frame was drawn with
        self._last: tuple[Any, int] | None = None  # (features, source index) of the last map
        self._since: int | None = None  # frames since the last inference (settings.every)
        self._count = 0

    # ------------------------------------------------------------------ one frame
    def annotate(self, frame: Any, *, perf: str | None = None) -> Annotation:
        """Annotate one frame: infer (on every `settings.every`-th call), map, smooth, draw.

        Args:
            frame: a uint8 BGR image (H, W, 3), or a `Frame` from a source.
            perf: a text line for the HUD (the runner passes fps and latency); None: none.

        Returns:
            The `Annotation`: the drawn image and the map, raw and as drawn.

        Raises:
            LiveheatError: the frame is not an image, or the settings cannot be drawn.
        """
        image, index = _image_of(frame)
        if index is None:
            index = self._count
        self._count += 1
        every = max(1, int(self.settings.every or 1))
        due = self._since is None or self._since + 1 >= every or self._last is None
        self._since = 0 if due else self._since + 1
        with one_blas_thread():
            if due:
                self._last = (self.backbone(image), index)
            features, feat_index = self._last
            return self.render(image, features, feat_index, perf=perf)

    def render(
        self, image: np.ndarray, features: Any, index: int = -1, *, perf: str | None = None
    ) -> Annotation:
        """Draw `image` with the map of `features` (inferred elsewhere, e.g. by the runner's
        workers); called in frame order, it feeds the smoother. `features=None`: no map yet."""
        with self._lock:
            return self._guarded(image, features, index, perf, previous=None)

    def redraw(
        self, image: np.ndarray, previous: Annotation, *, perf: str | None = None
    ) -> Annotation:
        """Draw a held (paused) frame again with the current settings, from the map drawn on it
        (`previous`); the smoother and the caches are left as they are."""
        with self._lock:
            return self._guarded(image, previous.features, previous.index, perf, previous)

    # ------------------------------------------------------------------ internals
    def _guarded(self, image, features, index, perf, previous) -> Annotation:
        """Render with a settings snapshot; a live change that cannot be drawn is undone."""
        snap = self.settings.snapshot()
        try:
            ann = self._draw(image, features, index, snap, perf, previous)
        except (LiveheatError, ValueError) as e:
            good = self._good
            changed = {} if good is None else _changed(snap, good)
            if not changed:
                raise
            bad = _culprits(
                changed, good, lambda s: self._draw(image, features, index, s, perf, previous)
            )
            note = self._undo(bad, good, e)
            snap = dataclasses.replace(snap, **{k: getattr(good, k) for k in bad})
            ann = dataclasses.replace(
                self._draw(image, features, index, snap, perf, previous), note=note
            )
        self._good = snap
        return ann

    def _undo(self, changed: dict, good: Settings, error: BaseException) -> str:
        """Put the fields of a live change back (unless changed again since); the note."""
        now = self.settings.snapshot()
        self.settings.update(
            **{k: getattr(good, k) for k, v in changed.items() if getattr(now, k) == v}
        )
        what = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"live change undone ({what}): {reason}"

    def _heat(self, features: Any, snap: Settings) -> tuple[Any, bool]:
        """(the `Stable` record for these features, fresh); computed once per features."""
        target = _parse_target(snap.target)
        key = (snap.method, target, float(snap.smooth), snap.smoother)
        if features is self._c_feats and key == self._c_key:
            return self._c_stable, False
        fresh = features is not self._c_feats
        stable = self._stable(
            features, snap.method, target, smooth=float(snap.smooth), smoother=snap.smoother
        )
        self._c_feats, self._c_key, self._c_stable = features, key, stable
        return stable, fresh

    def _draw(self, image, features, index, snap, perf, previous) -> Annotation:
        target = _parse_target(snap.target)
        key = (snap.method, target)
        fresh, raw, cut, explained = False, None, False, None
        steady = snap.norm == "fixed" or (snap.norm == "minmax" and snap.scale == "steady")
        if features is None:
            heat, scale = None, (0.0, 1.0)
        elif previous is not None:  # a held frame: its own map, or a raw one for a new method
            explained, scale = previous.target, previous.scale
            if previous.heat is not None and previous.key == key:
                heat, raw = previous.heat, previous.raw
            else:
                heat = raw = heatmap(features, method=snap.method, target=previous.target)
                scale = _range(heat)
        else:
            stable, fresh = self._heat(features, snap)
            heat, raw, cut, explained, scale = (
                stable.heat,
                stable.raw,
                stable.cut,
                stable.target,
                stable.scale,
            )
        if heat is not None and not (snap.norm == "minmax" and snap.scale == "steady"):
            scale = _range(heat)
        kw = _drawing_kwargs(snap)
        if snap.norm == "fixed":
            scale = (snap.vmin, snap.vmax)
            kw.update(vmin=snap.vmin, vmax=snap.vmax)
        elif steady and heat is not None and scale[1] > scale[0]:
            # (a map with no contrast at all, e.g. of a blank frame, has no range to hold:
            # drawn by its own min-max, which leaves the frame as it is)
            kw.update(norm="fixed", vmin=scale[0], vmax=scale[1])
        if heat is None:
            drawn = image.copy()
        elif snap.panels:
            drawn = panels(image, heat, **kw)
        else:
            drawn = overlay(image, heat, **kw)
        parts = hud_parts(snap.hud_parts, recording=self.recording) if snap.hud else ()
        if parts:
            lines = []
            if "label" in parts:
                lines += self._hud_lines(features, snap, explained, heat is not None, not previous)
                if drawn.shape[0] < 240:  # a small frame: the class line only (15 % at most)
                    lines = lines[:1]
            if "perf" in parts and perf:
                lines.append(perf)
            # panels carry their own labelled colour bar
            bar = None
            if "bar" in parts and heat is not None and not snap.panels:
                unit = "raw" if steady or snap.norm == "minmax" else "rel"
                bar = (snap.colormap, *scale, unit)
            draw_hud(drawn, lines, colorbar=bar)
        return Annotation(
            image=drawn,
            heat=heat,
            raw=raw,
            features=features,
            target=explained,
            index=int(index) if features is not None else -1,
            fresh=fresh,
            scale=(float(scale[0]), float(scale[1])),
            steady=steady,
            key=key,
            cut=cut,
            perf=perf if snap.hud and snap.hud_parts == "auto" and "perf" not in parts else None,
        )

    def _hud_lines(self, features: Any, snap: Settings, target, has_map: bool, cache: bool) -> list:
        if not has_map:
            return ["waiting for the first heatmap"]
        lines = []
        label = self._class_line(features, target, fixed=snap.target, cache=cache)
        if label:
            lines.append(label)
        layer = getattr(features, "layer", None) or snap.layer or ""
        lines.append(f"{snap.method} @ {layer}" if layer else snap.method)
        return lines

    def _class_line(self, features: Any, target: int | None, *, fixed: Any, cache: bool) -> str:
        """'tabby 53%': the class the map explains (the held or given target) with its
        probability now, else the top class; cached per map (not for a held frame's redraw)."""
        key = (id(features), target)
        if self._c_class[0] == key and self._c_class[1] is features:
            return self._c_class[2]
        text = ""
        probs = features.probs() if hasattr(features, "probs") else None
        if probs is not None:
            top = int(probs.argmax())
            index = top if target is None else int(target)
            name = features.label(index).split(",")[0]  # 'gorilla, Gorilla gorilla' -> 'gorilla'
            text = f"{name} {float(probs[index]):.0%}"
            if fixed not in (None, "auto", "top1"):
                text += " (target)"
            elif index != top:
                text += " (held)"  # another class leads, not yet clearly enough
        if cache:
            self._c_class = (key, features, text)
        return text


def _culprits(changed: dict, good: Settings, draw: Callable[[Settings], Any]) -> dict:
    """Of several live changes that came together, the ones that cannot be drawn: each is
    tried alone on the last good settings (`draw` raises for a bad one), so a bad one
    (channel:99999) does not take a good one (alpha 0.7) posted in the same moment with it."""
    if len(changed) < 2:
        return changed
    bad = {}
    for k, v in changed.items():
        try:
            draw(dataclasses.replace(good, **{k: v}))
        except (LiveheatError, ValueError):
            bad[k] = v
    rest = {k: v for k, v in changed.items() if k not in bad}
    if not bad:
        return changed  # only their combination fails: undo them all
    if rest:
        try:
            draw(dataclasses.replace(good, **rest))
        except (LiveheatError, ValueError):
            return changed
    return bad
