"""An image folder or glob reader."""

from __future__ import annotations

import glob as _glob
import os

import cv2
import numpy as np

from liveheat._common.imagefiles import imread_quietly
from liveheat._common.images import as_bgr_u8
from liveheat.errors import LiveheatError
from liveheat.sources.base import (
    DEFAULT_IMAGE_FPS,
    IMAGE_EXTENSIONS,
    _natural_key,
    _Reader,
    exact_fps,
    log,
)


class _ImageReader(_Reader):
    """An image sequence: sorted paths; unreadable images are skipped with a logged warning."""

    kind = "images"
    seekable = True

    def __init__(self, files: list[str], name: str, fps: float | None) -> None:
        self.files = files
        self.name = name
        self.fps = exact_fps(fps) or DEFAULT_IMAGE_FPS
        self.frame_count = len(files)
        self.skipped: list[str] = []
        self._i = 0
        first = self._next_image()
        if first is None:
            raise LiveheatError(
                f"no readable image in {name} ({len(files)} file(s), none could be decoded); "
                f"expected images such as {', '.join(IMAGE_EXTENSIONS[:4])}"
            )
        self._first: np.ndarray | None = first
        self.size = (first.shape[1], first.shape[0])

    def _next_image(self) -> np.ndarray | None:
        while self._i < len(self.files):
            path = self.files[self._i]
            self._i += 1
            # as `liveheat image` reads it (16-bit, float, BGRA by as_bgr_u8's one rule)
            why = "not an image OpenCV can decode"
            try:
                image = imread_quietly(path, cv2.IMREAD_UNCHANGED)
                if image is not None and image.size:
                    return as_bgr_u8(image)
            except (LiveheatError, ValueError) as e:
                why = str(e).split(": ", 1)[-1] if isinstance(e, LiveheatError) else str(e)
            if path not in self.skipped:
                self.skipped.append(path)
            log.warning("liveheat: skipping unreadable image '%s' (%s)", path, why)
        return None

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            image, self._first = self._first, None
            return image
        image = self._next_image()
        if image is None:
            return None
        w, h = self.size
        if image.shape[:2] != (h, w):  # one size per source: later images are resized to the first
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return image

    def rewind(self) -> None:
        self._i = 0


def _image_files(spec: str) -> tuple[list[str], str] | None:
    """(sorted image paths, display name) for a folder or glob; None when spec is neither."""
    if os.path.isdir(spec):
        names = [
            os.path.join(spec, n)
            for n in os.listdir(spec)
            if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(spec, n))
        ]
        if not names:
            raise LiveheatError(
                f"folder '{spec}' has no images; expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)} (or give a video file or a glob like 'dir/*.png')"
            )
        return sorted(names, key=_natural_key), f"folder '{spec}'"
    if any(c in spec for c in "*?[") and not os.path.exists(spec):
        names = [
            p
            for p in _glob.glob(os.path.expanduser(spec))
            if os.path.isfile(p) and p.lower().endswith(IMAGE_EXTENSIONS)
        ]
        if not names:
            raise LiveheatError(
                f"no images match '{spec}'; expected a glob like 'frames/*.png' matching files "
                f"ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        return sorted(names, key=_natural_key), f"glob '{spec}'"
    return None
