"""A video file reader."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from liveheat._common.images import _as_bgr
from liveheat._common.system import quiet_opencv
from liveheat.errors import LiveheatError
from liveheat.sources.base import _cv_reason, _Reader, _release, exact_fps, log


class _VideoFileReader(_Reader):
    kind = "file"
    seekable = True

    def __init__(self, path: str, fps: float | None) -> None:
        self.path = path
        self.name = os.path.basename(path) or path
        self._fps_override = fps
        self._cap: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self._open()
        cap = self._cap
        assert cap is not None
        self.fps = exact_fps(fps) or exact_fps(cap.get(cv2.CAP_PROP_FPS))
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if math.isfinite(count) and 0 < count < 2**40 else None
        h, w = self._first.shape[:2] if self._first is not None else (0, 0)
        self.size = (int(w), int(h))

    def _open(self) -> None:
        with quiet_opencv():
            try:
                cap = cv2.VideoCapture(self.path)
            except cv2.error as e:
                raise LiveheatError(
                    f"cannot open video file '{self.path}': OpenCV refused it ({_cv_reason(e)})"
                ) from None
        if not cap.isOpened():
            _release(cap)
            raise LiveheatError(
                f"cannot open video file '{self.path}': OpenCV/FFmpeg cannot read it (not a "
                "video, an unsupported codec, or cut short so its index is missing); check that "
                "it plays elsewhere, or re-encode it"
            )
        ok, image = cap.read()
        if not ok or image is None:
            _release(cap)
            raise LiveheatError(
                f"video file '{self.path}' has no readable frames (empty or corrupt); "
                "check that it plays elsewhere, or re-encode it"
            )
        self._cap = cap
        self._first = _as_bgr(image)
        self._n = 0

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        if self._first is not None:
            image, self._first = self._first, None
            self._n += 1
            return image
        try:
            ok, image = self._cap.read()
        except cv2.error as e:  # a decoder error mid-file: treat as the end
            ok, image = False, None
            log.debug("decoder error in %s: %s", self.path, e)
        if not ok or image is None:
            if self.frame_count is not None and self._n < self.frame_count:
                self.error = (
                    f"video '{self.name}' ended early: read {self._n} of {self.frame_count} "
                    "frames (file truncated or corrupt)"
                )
            return None
        self._n += 1
        return _as_bgr(image)

    def rewind(self) -> None:
        _release(self._cap)
        self._cap = None
        self._open()

    def position_s(self) -> float:
        return self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self._cap is not None else 0.0

    def close(self) -> None:
        cap, self._cap = self._cap, None
        _release(cap)
