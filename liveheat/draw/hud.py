"""Text on frames: the HUD lines, the colour bar beside them, and the key help."""

from __future__ import annotations

import cv2
import numpy as np

from liveheat.errors import LiveheatError


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    # sized by the larger of the height and the 16:9 height of the width, so that a wide
    # panels image (three frames side by side), shown scaled down to fit the screen, still
    # has readable text: 0.6 at 720p, 0.9 at 1080p, ~1.6 on 3 x 1280 x 720 panels
    # (small frames get small text: on 176x144 the HUD and bar stay under 15 % of the frame)
    h, w = image.shape[:2]
    floor = 0.45 if h >= 360 else 0.3 if h >= 240 else 0.27
    scale = min(2.0, max(floor, max(h, w * 9 / 16) / 1200))
    return scale, 1 if scale < 0.75 else 2


def _text_box(
    image: np.ndarray,
    lines: list[str],
    origin: tuple[int, int],
    *,
    scale: float,
    thickness: int,
    color: tuple[int, int, int] = (255, 255, 255),
    center: bool = False,
) -> None:
    """Draw lines of text on a darkened box (in place); origin is the box's top-left corner."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    H, W = image.shape[:2]
    for _ in range(3):  # shrink the text until the box fits the image (e.g. help on panels)
        sizes = [cv2.getTextSize(t, font, scale, thickness) for t in lines]
        line_h = max(s[0][1] + s[1] for s in sizes) + max(4, int(8 * scale))
        pad = max(4, int(8 * scale))
        box_w = max(s[0][0] for s in sizes) + 2 * pad
        box_h = line_h * len(lines) + pad
        fit = min(1.0, H / box_h, W / box_w)
        if fit >= 1.0 or scale <= 0.3:
            break
        scale = max(0.3, scale * fit * 0.97)
        thickness = 1 if scale < 0.75 else thickness
    x0, y0 = origin
    if center:
        x0, y0 = (W - box_w) // 2, (H - box_h) // 2
    x0, y0 = max(0, min(x0, W - 1)), max(0, min(y0, H - 1))
    x1, y1 = min(W, x0 + box_w), min(H, y0 + box_h)
    roi = image[y0:y1, x0:x1]
    np.right_shift(roi, 2, out=roi)  # a dark backing box (a quarter of the brightness)
    for i, text in enumerate(lines):
        (_, th), _base = sizes[i]
        y = y0 + pad + i * line_h + th
        cv2.putText(image, text, (x0 + pad, y), font, scale, color, thickness, cv2.LINE_AA)


def draw_hud(
    image: np.ndarray,
    lines: list[str],
    *,
    colorbar: tuple | None = None,
) -> np.ndarray:
    """Draw HUD text (top-left, on a dark box) and an optional colour bar (right edge), in place.

    `colorbar` is (colormap, vmin, vmax) or (colormap, vmin, vmax, unit): the bar uses that
    colormap, labelled with the values (and the unit: "raw" map units or "rel"ative).

    Examples:
        >>> img = np.full((360, 640, 3), 200, np.uint8)
        >>> out = draw_hud(img, ["cam  top: 281 tabby 0.53"], colorbar=("jet", 0.0, 1.0))
        >>> out is img, int(img[5, 5, 0]) < 200
        (True, True)
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise LiveheatError(f"draw_hud needs a uint8 BGR image, got {image.dtype} {image.shape}")
    scale, thickness = _text_scale(image)
    if lines:
        _text_box(image, [str(t) for t in lines], (0, 0), scale=scale, thickness=thickness)
    if colorbar is not None:
        from liveheat.draw.panels import colorbar as make_bar

        cmap, vmin, vmax, *unit = colorbar
        H, W = image.shape[:2]
        bar_h = max(32, H // 2 if H >= 360 else H // 3 if H >= 240 else H // 4)
        try:
            bar = make_bar(bar_h, colormap=cmap, vmin=vmin, vmax=vmax, unit=(unit or [None])[0])
        except ValueError as e:
            raise LiveheatError(str(e)) from None
        bh, bw = bar.shape[:2]
        bw = min(bw, W)
        x0, y0 = W - bw, max(0, (H - bh) // 2)
        image[y0 : y0 + bh, x0 : x0 + bw] = bar[: H - y0, :bw]
    return image


def draw_centered(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """Draw text lines centred on a dark box, in place (the key help, for one).

    Examples:
        >>> img = np.full((480, 640, 3), 255, np.uint8)
        >>> int(draw_centered(img, ["q  quit"])[240, 320].min()) < 255
        True
    """
    scale, thickness = _text_scale(image)
    _text_box(image, lines, (0, 0), scale=scale, thickness=thickness, center=True)
    return image
