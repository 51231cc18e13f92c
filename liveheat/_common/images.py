"""One frame coercion: anything image-like to a uint8 BGR frame, by one rule per dtype."""

from __future__ import annotations

import cv2
import numpy as np

_U16_TO_U8 = 1.0 / 257.0  # 65535 / 255: the full 16-bit range onto the full 8-bit range


def as_bgr_u8(image: np.ndarray) -> np.ndarray:
    """A uint8 BGR ``H x W x 3`` frame from any image-like array, by one rule per dtype.

    A uint8 ``H x W x 3`` array is returned as it is: the same object, no copy (a view that
    is not contiguous stays so). Channels: ``H x W`` and ``H x W x 1`` are grey (copied to the
    three channels), ``H x W x 4`` is BGRA (the alpha channel is dropped).

    Values, by dtype:

    - ``uint8``: kept.
    - ``uint16``: divided by 257 and rounded to the nearest level (0 -> 0, 65535 -> 255).
      Why not ``>> 8``: 257 = 65535 / 255 is the exact ratio of the two ranges, and rounding
      gives every 16-bit value its nearest 8-bit level (error at most half a level).
      ``>> 8`` divides by 256 and truncates: a true 16-bit frame (a sensor, a 16-bit PNG
      not widened from 8 bits) lands up to one level low, half a level darker on average.
      Both give back an 8-bit image widened the usual way (``v * 257``: PNG, OpenCV,
      scikit-image) exactly; ``cv2.convertScaleAbs`` does it in one pass.
    - ``bool``: False -> 0, True -> 255 (a mask).
    - float (``float16``, ``float32``, ``float64``): taken as [0, 1], the convention of
      float images (scikit-image, OpenCV's ``imshow``): times 255, rounded, clipped to
      [0, 255]; NaN -> 0, +inf -> 255. One fixed scale, so a dark frame of a video is not
      stretched to full range the way a per-frame min-max would (the picture would pump).
    - other integers (``int8`` to ``int64``, ``uint32``, ``uint64``): taken as 8-bit levels
      (what ``frame.astype(int) + 10`` arithmetic gives) and clipped to [0, 255].

    Args:
        image: an ``H x W``, ``H x W x 1``, ``H x W x 3`` (BGR) or ``H x W x 4`` (BGRA) array.

    Returns:
        A uint8 ``H x W x 3`` BGR array: ``image`` itself when it already is one, else a new
        array.

    Raises:
        ValueError: not an image shape (empty, not 2-D or 3-D, or 2 or more than 4 channels),
            or a dtype with no image reading (complex, object, text, dates).

    Examples:
        >>> bgr = np.zeros((2, 3, 3), np.uint8)
        >>> as_bgr_u8(bgr) is bgr
        True
        >>> as_bgr_u8(np.array([[0, 32767, 65535]], np.uint16))[0, :, 0].tolist()
        [0, 127, 255]
        >>> as_bgr_u8(np.array([[0.0, 0.5, 2.0, np.nan]]))[0, :, 0].tolist()
        [0, 128, 255, 0]
        >>> as_bgr_u8(np.array([[-5, 100, 300]]))[0, :, 0].tolist()
        [0, 100, 255]
        >>> as_bgr_u8(np.zeros((4, 5, 4), np.uint8)).shape
        (4, 5, 3)
        >>> as_bgr_u8(np.zeros((4, 5, 2), np.uint8))
        Traceback (most recent call last):
        ValueError: image of shape (4, 5, 2) is not a frame; expected H x W (grey),
        H x W x 3 (BGR) or H x W x 4 (BGRA)
    """
    image = np.asarray(image)
    ndim = image.ndim
    if ndim == 3:
        channels = image.shape[2]
        if channels == 3 and image.dtype == np.uint8:
            return image  # the common case first: a frame passes through untouched
        if channels not in (1, 3, 4) or image.size == 0:
            _not_a_frame(image)
    elif ndim != 2 or image.size == 0:
        _not_a_frame(image)
    else:
        channels = 1
    if image.dtype != np.uint8:
        image = _levels(image)
    if channels == 3:
        return image
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def _levels(image: np.ndarray) -> np.ndarray:
    """uint8 values by the rules of `as_bgr_u8`, same shape (channels untouched)."""
    kind = image.dtype.kind
    if image.dtype == np.uint16:
        return cv2.convertScaleAbs(image, alpha=_U16_TO_U8)  # rounds to nearest, one pass
    if kind == "b":
        return image.astype(np.uint8) * np.uint8(255)
    if kind == "f":
        f = image if image.dtype in (np.float32, np.float64) else image.astype(np.float32)
        f = np.nan_to_num(f, nan=0.0)  # a copy: the caller's array is never written
        np.clip(f, 0.0, 1.0, out=f)
        return cv2.convertScaleAbs(f, alpha=255.0)
    if kind in "iu":
        return np.clip(image, 0, 255).astype(np.uint8)
    raise ValueError(
        f"image dtype {image.dtype} is not an image type; expected uint8 (or uint16, bool, "
        "float in [0, 1], integer levels 0-255)"
    )


def _not_a_frame(image: np.ndarray) -> None:
    raise ValueError(
        f"image of shape {image.shape} is not a frame; expected H x W (grey), H x W x 3 (BGR) "
        "or H x W x 4 (BGRA)"
    )
