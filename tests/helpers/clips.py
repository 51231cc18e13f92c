"""Short clips built from real photographs (scikit-image's data), for the map-stability tests
and scripts/bench_stability.py: shots with cuts between them, and an object moving across a
still background."""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data

SIZE = (640, 360)  # W, H


def _bgr(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    return cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3]), cv2.COLOR_RGB2BGR)


def _pan(image: np.ndarray, n: int, *, zoom: tuple[float, float], drift: tuple[float, float]):
    """n frames of a slow camera move over `image`: a crop that zooms and drifts."""
    h, w = image.shape[:2]
    out = []
    for i in range(n):
        t = i / max(1, n - 1)
        z = zoom[0] + (zoom[1] - zoom[0]) * t
        cw, ch = w / z, (w / z) * SIZE[1] / SIZE[0]
        if ch > h:
            ch, cw = h / z, (h / z) * SIZE[0] / SIZE[1]
        cx = w / 2 + drift[0] * t * (w - cw) / 2
        cy = h / 2 + drift[1] * t * (h - ch) / 2
        m = np.float32([[SIZE[0] / cw, 0, -(cx - cw / 2) * SIZE[0] / cw],
                        [0, SIZE[1] / ch, -(cy - ch / 2) * SIZE[1] / ch]])  # fmt: skip
        out.append(cv2.warpAffine(image, m, SIZE, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT))  # fmt: skip
    return out


def shots_clip(frames_per_shot: int = 30) -> tuple[list[np.ndarray], list[int]]:
    """Four shots (cat, coffee, astronaut, rocket), each a slow camera move; (frames, the
    indices where a shot starts)."""
    plan = [
        (skimage.data.chelsea(), (1.0, 1.3), (0.4, 0.0)),
        (skimage.data.coffee(), (1.2, 1.0), (-0.3, 0.2)),
        (skimage.data.astronaut(), (1.0, 1.4), (0.0, -0.5)),
        (skimage.data.rocket(), (1.1, 1.3), (0.5, 0.3)),
    ]
    frames, cuts = [], []
    for image, zoom, drift in plan:
        cuts.append(len(frames))
        frames += _pan(_bgr(image), frames_per_shot, zoom=zoom, drift=drift)
    return frames, cuts


def moving_object_clip(n: int = 48, step: int = 8) -> tuple[list[np.ndarray], np.ndarray]:
    """Chelsea the cat's head sliding left to right across a still gravel background;
    (frames, the head's centre x per frame)."""
    background = cv2.resize(_bgr(skimage.data.gravel()), SIZE)
    background = cv2.GaussianBlur(background, (0, 0), 3)
    cat = _bgr(skimage.data.chelsea())[20:260, 100:340]  # the head and shoulders
    cat = cv2.resize(cat, (180, 180))
    frames, centres = [], []
    y0 = (SIZE[1] - 180) // 2
    for i in range(n):
        x0 = 10 + i * step
        frame = background.copy()
        frame[y0 : y0 + 180, x0 : x0 + 180] = cat
        frames.append(frame)
        centres.append(x0 + 90)
    return frames, np.asarray(centres, np.float64)
