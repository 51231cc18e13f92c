"""Frame, the record a source yields, and what every reader shares."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np

from liveheat.errors import LiveheatError

log = logging.getLogger("liveheat.sources")

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pnm",
    ".jp2",
)
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
DEFAULT_IMAGE_FPS = 25.0
MAX_CAMERA_INDEX = 2**31  # OpenCV takes a C int
HEALTHY_S = 5.0  # a reconnected stream must stay up this long before its back-off resets
# NTSC-family rates (N * 1000/1001): containers often store them rounded (29.97, 23.98); keep
# them exact
_NTSC_BASES = (15, 24, 30, 48, 60, 120, 240)

T = TypeVar("T")


@dataclass
class Frame:
    """One frame from a source.

    `image` is uint8 BGR HxWx3; `index` its 0-based position in the source (recorded: the exact
    frame number; live: the number of frames captured before it, so gaps mean drops);
    `timestamp` seconds (recorded: index / fps, source time; live: `time.monotonic()` at capture);
    `fps` the source rate with fractions kept exactly (30000/1001), None when unknown.
    """

    image: np.ndarray
    index: int
    timestamp: float
    fps: float | None


def exact_fps(value: float | None) -> float | None:
    """A usable frame rate from what a container reports: None if unknown, NTSC rates made exact.

    Examples:
        >>> exact_fps(29.97) == 30000 / 1001, exact_fps(23.98) == 24000 / 1001
        (True, True)
        >>> exact_fps(25.0), exact_fps(0.0), exact_fps(float("nan"))
        (25.0, None, None)
    """
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0 or value > 1000:
        return None
    for base in _NTSC_BASES:
        ntsc = base * 1000 / 1001
        # rounded to 2 decimals (23.98) is still closer than 0.4 of the way to the whole rate
        if abs(value - ntsc) < 0.4 * (base - ntsc):
            return ntsc
    return value


def _call_with_timeout(
    fn: Callable[[], T], timeout: float, on_late: Callable[[T], None], what: str
) -> T:
    """Run `fn` in a daemon thread; LiveheatError if it takes longer than `timeout` seconds.

    A late result is handed to `on_late` (to release it) when it finally arrives.
    """
    box: dict[str, Any] = {}
    lock = threading.Lock()

    def run() -> None:
        try:
            value = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            with lock:
                box["error"] = e
            return
        with lock:
            if box.get("abandoned"):
                late = True
            else:
                box["value"] = value
                late = False
        if late:
            on_late(value)

    thread = threading.Thread(target=run, name=f"liveheat-open-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    with lock:
        if "error" in box:
            raise box["error"]
        if "value" in box:
            return box["value"]
        box["abandoned"] = True
    raise LiveheatError(
        f"{what} did not open within {timeout:g} s; check that it is connected and reachable, "
        "or raise --open-timeout"
    )


def _release(cap: cv2.VideoCapture | None) -> None:
    if cap is not None:
        try:
            cap.release()
        except cv2.error:
            pass


def _cv_reason(e: cv2.error) -> str:
    """The first line of an OpenCV error without its version prefix (overload lists dropped)."""
    lines = str(e).strip().splitlines()
    return re.sub(r"^OpenCV\([^)]*\)\s*[^ ]*\s*error:\s*", "", lines[0]) if lines else "cv2.error"


def _natural_key(path: str) -> list:
    """Sort 'frame2.png' before 'frame10.png'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path)]


def _redact(url: str) -> str:
    """A URL without its password, for messages and `Source.name`."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


# ---------------------------------------------------------------------------------------------
# Readers: one per backend, each hands out images in order from the caller's thread.


class _Reader:
    kind = "?"
    name = "?"
    fps: float | None = None
    size: tuple[int, int] = (0, 0)
    frame_count: int | None = None
    error: str | None = None
    seekable = False  # can rewind (loop) and be paced (live emulation)

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def rewind(self) -> None:
        raise NotImplementedError

    def position_s(self) -> float:
        return 0.0

    def interrupt(self) -> None:
        """Ask a blocking read() to give up soon (called from another thread)."""

    def close(self) -> None:
        pass
