"""Frame, the record a source yields, and what every reader shares."""

from __future__ import annotations

import fractions
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from liveheat._common.files import bundled_clip
from liveheat.errors import LiveheatError

log = logging.getLogger("liveheat.sources")

#: the clip that ships in the package (Big Buck Bunny, 132 frames of 1280x720 at 25 fps; see
#: liveheat/data/ATTRIBUTION.md), found through importlib.resources wherever liveheat is
#: installed: ``open_source(BUNDLED_CLIP)``
BUNDLED_CLIP = Path(bundled_clip())

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

    Attributes:
        image: uint8 BGR H x W x 3 (`as_bgr_u8` made it so whatever the decoder gave).
        index: its 0-based position in the source (recorded: the exact frame number, with
            damaged frames a file left out not counted, their time kept by `pts`; live: the
            number of frames captured before it, so gaps mean drops).
        timestamp: seconds (a video file: this frame's own presentation time from the start
            of its video stream, so variable frame rates keep their timing; an image sequence:
            index / fps; live: `time.monotonic()` at capture).
        fps: the source rate with fractions kept exactly (30000/1001), None when unknown.
        pts: the source's presentation time of this frame in `time_base` units (a file read
            through PyAV: the stream's own value, on the file's clock, which its audio shares;
            a looping file adds each pass's length, so pts keep increasing), None when the
            reader does not know it (images, cameras, streams, any live source, a file whose
            fps was overridden); a video file written from these frames keeps these times
            (variable frame rates stay variable).
        time_base: the unit of `pts` as a fraction of a second (1/12800, 1001/30000), or None.

    Examples:
        >>> frame = Frame(np.zeros((720, 1280, 3), np.uint8), 50, 2.0, 25.0)
        >>> frame.image.shape, frame.index, frame.timestamp
        ((720, 1280, 3), 50, 2.0)
    """

    image: np.ndarray
    index: int
    timestamp: float
    fps: float | None
    pts: int | None = None
    time_base: fractions.Fraction | None = None


@dataclass(frozen=True)
class AudioInfo:
    """The sound of a video file (`Source.audio`), for an output that copies or re-encodes it
    by opening `path` itself (PyAV) and reading stream `stream_index` only.

    Attributes:
        path: the file, absolute.
        stream_index: the audio stream's index among all of the file's streams.
        codec: its codec as FFmpeg names it ('aac', 'opus', 'mp3'), '' when unknown.
        sample_rate: samples per second (48000), 0 when unknown.
        channels: 2 for stereo, 6 for 5.1, 0 when unknown.
        start_time_s: where the sound starts on the file's clock (seconds; 0.0 when unknown).
        video_start_s: where the first video frame is on the same clock (its pts * time_base):
            the sound of an output starts here, with the first frame.
        layout: the channel layout ('stereo', '5.1'), '' when unknown.

    Examples:
        >>> from liveheat.sources.source import open_source
        >>> with open_source(BUNDLED_CLIP) as src:
        ...     audio = src.audio
        >>> audio.codec, audio.sample_rate, audio.channels, audio.video_start_s
        ('aac', 48000, 6, 0.0)
    """

    path: str
    stream_index: int
    codec: str
    sample_rate: int
    channels: int
    start_time_s: float
    video_start_s: float = 0.0
    layout: str = ""


def exact_fps(value: float | None) -> float | None:
    """A usable frame rate from what a container reports: None if unknown, NTSC rates made exact.

    Args:
        value: the rate a container or camera reports (rounded, 0, NaN or None when unknown).

    Returns:
        The rate (N * 1000/1001 exactly for NTSC-family rates stored rounded), or None when
        `value` is missing, not finite, not positive or above 1000.

    Raises:
        Nothing: an unusable rate gives None (a value that is no number raises the
            `TypeError` or `ValueError` of ``float(value)``).

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
    audio: AudioInfo | None = None  # a video file's sound
    skipped_frames = 0  # damaged frames left out where the decoder recovered (video files)
    time_base: fractions.Fraction | None = None  # the unit of `pts` (video files)

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def frame(self, image: np.ndarray, index: int, fps: float | None) -> Frame:
        """The recorded `Frame` of the image `read()` just gave: a camera or stream read in
        order has its wall-clock capture time, a sequence index / fps; a video file
        overrides this with the frame's own pts."""
        if not self.seekable:
            return Frame(image, index, time.monotonic(), fps)
        return Frame(image, index, index / fps if fps else self.position_s(), fps)

    def rewind(self) -> None:
        raise NotImplementedError

    def position_s(self) -> float:
        return 0.0

    def interrupt(self) -> None:
        """Ask a blocking read() to give up soon (called from another thread)."""

    def close(self) -> None:
        pass
