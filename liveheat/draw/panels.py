"""Side-by-side panels (original | heatmap | overlay) and the labelled colour bar."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from liveheat.draw.overlay import _GRAY_LUT, _as_frame, _as_map, colorize, overlay, resolve_colormap


# ---------------------------------------------------------------- panels and colour bar
def colorbar(
    height: int,
    *,
    colormap: str | int | np.ndarray = "jet",
    vmin: float | None = None,
    vmax: float | None = None,
    width: int | None = None,
    unit: str | None = None,
) -> np.ndarray:
    """A vertical colour bar (hot at the top) with ``vmax``/``vmin`` labels; BGR uint8.

    `unit`, when given, is written in the middle: what the numbers are ("raw": map units,
    "rel": relative to a normalisation).

    Args:
        height: the bar's height in pixels.
        colormap: an OpenCV colormap name, a ``cv2.COLORMAP_*`` int or a 256x3 uint8 table.
        vmin: the label at the bottom; None writes none.
        vmax: the label at the top; None writes none.
        width: the image's width; None fits the bar and its labels.
        unit: a word written in the middle; None writes none.

    Returns:
        A new uint8 BGR image (height, width, 3).

    Raises:
        ValueError: an unknown colormap.

    Examples:
        >>> colorbar(200, vmin=0.0, vmax=1.0).shape[0]
        200
    """
    lut = resolve_colormap(colormap)
    height = int(height)
    scale = max(0.35, min(1.0, height / 600))
    labels = [_fmt(v) for v in (vmax, vmin) if v is not None] + ([unit] if unit else [])
    text_w = max(
        (cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for s in labels), default=0
    )
    bar_w = max(8, height // 24)
    pad = max(4, bar_w // 2)
    width = width or (pad + bar_w + pad + text_w + pad)
    img = np.full((height, width, 3), 32, np.uint8)
    ramp = np.linspace(255, 0, height).round().astype(np.uint8).reshape(height, 1)
    img[:, pad : pad + bar_w] = cv2.applyColorMap(ramp, lut)
    x = pad + bar_w + pad
    th = cv2.getTextSize("0", cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][1]
    if vmax is not None:
        cv2.putText(
            img,
            _fmt(vmax),
            (x, th + pad),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    if unit:
        cv2.putText(
            img,
            unit,
            (x, (height + th) // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (200, 200, 200),
            1,
            cv2.LINE_AA,
        )
    if vmin is not None:
        cv2.putText(
            img,
            _fmt(vmin),
            (x, height - pad),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return img


def _fmt(v) -> str:
    return f"{float(v):.3g}"


def panels(
    frame: np.ndarray, heat: np.ndarray, *, colorbar: bool = True, **overlay_kwargs: Any
) -> np.ndarray:
    """One BGR image: original | heatmap | overlay side by side, optionally a labelled colour bar.

    The colour bar is labelled with the map's own min and max (finite values), the range
    that ``minmax`` stretches over. ``overlay_kwargs`` go to :func:`overlay`.

    Args:
        frame: the image: HxW, HxWx3 (BGR) or HxWx4 (BGRA); uint8, uint16 or float.
        heat: a 2D numeric or bool map of any size.
        colorbar: append a colour bar labelled with the map's min and max.
        **overlay_kwargs: :func:`overlay`'s keywords (``alpha``, ``colormap``, ``mode``,
            ``norm``, ...); the heatmap panel uses the colour and scale ones.

    Returns:
        A new uint8 BGR image: the frame's height, three frame widths plus the bar's.

    Raises:
        ValueError: a bad frame, map or keyword value, as :func:`overlay` raises.
        TypeError: a keyword :func:`overlay` does not take.

    Examples:
        >>> panels(np.zeros((32, 96, 3), np.uint8), np.random.rand(7, 7), colorbar=False).shape
        (32, 288, 3)
        >>> with_bar = panels(np.zeros((32, 96, 3), np.uint8), np.random.rand(7, 7), mode="mask")
        >>> with_bar.shape[1] > 288  # the colour bar on the right
        True
    """
    bgr, _ = _as_frame(frame)
    height, width = bgr.shape[:2]
    cmap = overlay_kwargs.get("colormap", "jet")
    if overlay_kwargs.get("mode") == "gray":
        cmap = _GRAY_LUT.reshape(256, 3)
    keys = ("norm", "vmin", "vmax", "percentile", "interpolation")
    heat_img = colorize(
        heat,
        colormap=cmap,
        size=(width, height),
        **{k: overlay_kwargs[k] for k in keys if k in overlay_kwargs},
    )
    parts = [bgr, heat_img, overlay(bgr, heat, **overlay_kwargs)]
    if colorbar:
        h = _as_map(heat)
        finite = h[np.isfinite(h)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        parts.append(_colorbar_fn(height, colormap=cmap, vmin=lo, vmax=hi))
    return np.hstack(parts)


_colorbar_fn = colorbar
