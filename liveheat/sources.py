"""Where frames come from: camera, video file, image folder or glob, MJPEG/RTSP stream URL.

Live sources hand over the newest frame and drop stale ones; recorded sources hand over every frame.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import cv2
import numpy as np

from liveheat.errors import LiveheatError

__all__ = ["Frame", "Source", "open_source", "IMAGE_EXTENSIONS", "STREAM_SCHEMES"]

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


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 BGR HxWx3 from whatever a decoder gave (gray, BGRA, 16-bit)."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


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


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own WARN/ERROR lines while probing (our LiveheatError says it better)."""
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                cv2.utils.logging.setLogLevel(_quiet_saved)


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
        with _quiet_opencv():
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
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                if path not in self.skipped:
                    self.skipped.append(path)
                log.warning("liveheat: skipping unreadable image '%s'", path)
                continue
            return _as_bgr(image)
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


class _CaptureReader(_Reader):
    """A camera (index or /dev/video*) or a stream URL; URLs reconnect with back-off."""

    def __init__(
        self,
        target: int | str,
        *,
        kind: str,
        name: str,
        open_timeout: float,
        reconnect_timeout: float,
        read_timeout: float,
        fps: float | None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.target = target
        self.open_timeout = float(open_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        self.read_timeout = float(read_timeout)
        self.reconnects = 0
        self._stop = threading.Event()
        self._lost_since: float | None = None
        # stream outage: kept across reconnects that do not stay up HEALTHY_S, so a server that
        # accepts, sends a few frames and drops is retried with growing delays, then given up
        self._outage_since: float | None = None
        self._outage_reconnects = 0
        self._delay = 0.0
        self._connected_at = time.monotonic()
        cap, first = _call_with_timeout(self._connect, self.open_timeout, self._drop, name)
        if cap is None:
            raise LiveheatError(self._open_failure())
        self._cap: cv2.VideoCapture | None = cap
        self._first: np.ndarray | None = first
        self.size = (first.shape[1], first.shape[0])
        reported = exact_fps(cap.get(cv2.CAP_PROP_FPS))
        if kind == "stream" and str(target).lower().startswith("http"):
            reported = None  # MJPEG over HTTP carries no rate; FFmpeg's 25 is made up
        self.fps = exact_fps(fps) or reported

    def _open_failure(self) -> str:
        if self.kind == "camera":
            return (
                f"{self.name} not found or busy (OpenCV could not open it or read a frame); "
                "check that it is connected and not used by another program, or try another "
                "index such as 1"
            )
        return (
            f"cannot open stream {self.name}: no video could be read from it; check the address "
            "and that the server is running (MJPEG: multipart/x-mixed-replace; RTSP: rtsp://)"
        )

    @staticmethod
    def _drop(result: tuple[cv2.VideoCapture | None, np.ndarray | None]) -> None:
        _release(result[0])

    def _connect(self) -> tuple[cv2.VideoCapture | None, np.ndarray | None]:
        """Open the capture and read one frame; (None, None) on failure."""
        with _quiet_opencv():
            return self._connect_loud()

    def _connect_loud(self) -> tuple[cv2.VideoCapture | None, np.ndarray | None]:
        if self.kind == "stream":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout * 1000),
            ]  # fmt: skip
        try:
            if self.kind == "stream":
                cap = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
            else:
                cap = cv2.VideoCapture(self.target)
        except cv2.error as e:  # OpenCV rejects the argument itself (bad index or address)
            raise LiveheatError(
                f"cannot open {self.name}: OpenCV refused it ({_cv_reason(e)})"
            ) from None
        try:
            if not cap.isOpened():
                _release(cap)
                return None, None
            ok, image = cap.read()
        except cv2.error:
            ok, image = False, None
        if not ok or image is None:
            _release(cap)
            return None, None
        return cap, _as_bgr(image)

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            image, self._first = self._first, None
            return image
        while not self._stop.is_set():
            cap = self._cap
            ok, image = False, None
            if cap is not None:
                try:
                    ok, image = cap.read()
                except cv2.error:
                    ok, image = False, None
            if ok and image is not None:
                self._lost_since = None
                if (
                    self._outage_since is not None
                    and time.monotonic() - self._connected_at >= HEALTHY_S
                ):  # the reconnected stream stayed up: the outage is over, back-off resets
                    self._outage_since, self._outage_reconnects, self._delay = None, 0, 0.0
                return self._fit(_as_bgr(image))
            if self._stop.is_set():
                return None
            if self.kind == "camera":
                return self._camera_hiccup()
            image = self._reconnect()
            if image is not None:
                return image
            return None
        return None

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """One size per source: a stream back at another resolution is resized to the first."""
        w, h = self.size
        if image.shape[1] != w or image.shape[0] != h:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return image

    def _camera_hiccup(self) -> np.ndarray | None:
        """A camera read failed: retry for up to 1 s (USB glitches), then call it disconnected."""
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
        while not self._stop.is_set() and time.monotonic() - self._lost_since < 1.0:
            self._stop.wait(0.05)
            try:
                ok, image = self._cap.read() if self._cap is not None else (False, None)
            except cv2.error:
                ok, image = False, None
            if ok and image is not None:
                self._lost_since = None
                return self._fit(_as_bgr(image))
        if not self._stop.is_set():
            self.error = f"{self.name} stopped delivering frames (disconnected?)"
        return None

    def _reconnect(self) -> np.ndarray | None:
        """The stream broke: reconnect with back-off until `reconnect_timeout` s after the first
        loss. The first try is immediate, then 0.25 s doubling to 4 s between tries; a reconnect
        counts as the end of the outage only once it stays up HEALTHY_S, so a stream that keeps
        dropping right after connecting keeps its back-off and its deadline."""
        _release(self._cap)
        self._cap = None
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since, self._outage_reconnects, self._delay = now, 0, 0.0
            log.warning("liveheat: stream %s lost; reconnecting", self.name)
        else:
            log.warning(
                "liveheat: stream %s dropped again %.1f s after reconnecting; retrying in %g s",
                self.name,
                now - self._connected_at,
                self._delay,
            )
        deadline = self._outage_since + self.reconnect_timeout
        tries = 0
        while not self._stop.is_set():
            wait = min(self._delay, deadline - time.monotonic())
            if wait > 0 and self._stop.wait(wait):
                break
            if time.monotonic() >= deadline:
                break
            self._delay = min(max(self._delay * 2, 0.25), 4.0)
            tries += 1
            cap, image = self._connect()
            if cap is not None:
                if self._stop.is_set():
                    _release(cap)
                    return None
                self._cap = cap
                self._connected_at = time.monotonic()
                self.reconnects += 1
                self._outage_reconnects += 1
                log.warning("liveheat: stream %s back after %d attempt(s)", self.name, tries)
                h, w = image.shape[:2]
                if (w, h) != self.size:
                    log.warning(
                        "liveheat: stream %s came back at %dx%d; resizing its frames to %dx%d",
                        self.name, w, h, *self.size,
                    )  # fmt: skip
                return self._fit(image)
        if not self._stop.is_set():
            if self._outage_reconnects:
                self.error = (
                    f"stream {self.name} keeps dropping: {self._outage_reconnects} reconnect(s) "
                    f"in {time.monotonic() - self._outage_since:.0f} s, none stayed up "
                    f"{HEALTHY_S:g} s; gave up after {self.reconnect_timeout:g} s"
                )
            else:
                self.error = (
                    f"stream {self.name} lost and not back within {self.reconnect_timeout:g} s "
                    f"({tries} reconnect attempt(s))"
                )
        return None

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        cap, self._cap = self._cap, None
        _release(cap)


# ---------------------------------------------------------------------------------------------


class Source:
    """Frames from one place: an iterator and context manager of `Frame`; `.read()` -> Frame|None.

    Recorded (`live=False`): every frame in order, read in the caller's thread, none dropped.
    Live (`live=True`): a daemon capture thread keeps only the newest frame; `read()` blocks until
    a frame newer than the last one returned and returns the newest, counting the ones it skipped
    in `.dropped`. A live file (camera emulation) is paced at its fps in real time.

    Attributes: `name`, `kind` ("camera" | "file" | "images" | "stream"), `live`, `fps`,
    `size` (W, H), `frame_count` (recorded, not looping; else None), `dropped`, `captured`
    (frames taken from the backend), `error` (why it ended early, else None), `skipped`
    (unreadable images), `reconnects` (stream).

    Examples:
        >>> with open_source("liveheat/data/bigbuckbunny.mp4") as src:
        ...     first = src.read()
        >>> first.index, first.image.shape, src.fps
        (0, (720, 1280, 3), 25.0)
    """

    def __init__(self, reader: _Reader, *, live: bool, loop: bool = False) -> None:
        self._reader = reader
        self.name = reader.name
        self.kind = reader.kind
        self.live = bool(live)
        self.loop = bool(loop)
        self.fps: float | None = reader.fps
        self.size: tuple[int, int] = reader.size
        self.frame_count: int | None = (
            reader.frame_count if not self.live and not self.loop else None
        )
        self.dropped = 0
        self.captured = 0
        self.error: str | None = None
        self._index = 0
        self._ended = False
        self._closed = False
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._slot: Frame | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.live:
            self._pace = reader.seekable  # files and image folders: emulate a camera
            self._thread = threading.Thread(
                target=self._capture, name=f"liveheat-capture-{self.name}", daemon=True
            )
            self._thread.start()

    # -- extra read-only views of the reader
    @property
    def skipped(self) -> list[str]:
        return list(getattr(self._reader, "skipped", []))

    @property
    def reconnects(self) -> int:
        return int(getattr(self._reader, "reconnects", 0))

    def __repr__(self) -> str:
        mode = "live" if self.live else "recorded"
        w, h = self.size
        return f"<Source {self.kind} {self.name!r} {mode} {w}x{h} fps={self.fps}>"

    # -- recorded
    def _next_recorded(self) -> Frame | None:
        reader = self._reader
        image = reader.read()
        if image is None and self.loop and reader.error is None and self._index > 0:
            reader.rewind()
            image = reader.read()
        if image is None:
            self._ended = True
            self.error = reader.error
            return None
        index = self._index
        self._index += 1
        self.captured += 1
        if not reader.seekable:  # a camera or stream read in order: wall-clock capture time
            timestamp = time.monotonic()
        else:
            timestamp = index / self.fps if self.fps else reader.position_s()
        return Frame(image, index, timestamp, self.fps)

    # -- live
    def _capture(self) -> None:
        reader = self._reader
        period = 1.0 / self.fps if (self._pace and self.fps) else 0.0
        t0 = time.monotonic()
        k = 0
        try:
            while not self._stop.is_set():
                image = reader.read()
                if image is None and self.loop and reader.seekable and reader.error is None and k:
                    reader.rewind()
                    image = reader.read()
                if image is None or self._stop.is_set():
                    break
                if period:
                    now = time.monotonic()
                    due = t0 + k * period
                    if now - due > period:  # fell behind (slow decode): like a camera, no burst
                        t0 = now - k * period
                    elif due > now and self._stop.wait(due - now):
                        break
                frame = Frame(image, k, time.monotonic(), self.fps)
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = frame
                    self.captured += 1
                    self._cond.notify_all()
                k += 1
        except Exception as e:  # noqa: BLE001 - a capture thread must end the source, not vanish
            reader.error = reader.error or f"{self.name}: capture failed: {e}"
        finally:
            reader.close()  # released before the consumer learns of the end
            with self._cond:
                self._ended = True
                if not self._stop.is_set():
                    self.error = reader.error
                self._cond.notify_all()

    def read(self) -> Frame | None:
        """The next frame (recorded) or the newest unseen one (live); None at the end.

        Examples:
            >>> src = open_source("liveheat/data/bigbuckbunny.mp4")
            >>> [src.read().index for _ in range(3)]
            [0, 1, 2]
            >>> src.close(); src.read() is None
            True
        """
        if not self.live:
            with self._lock:
                if self._closed or self._ended:
                    return None
                return self._next_recorded()
        with self._cond:
            while self._slot is None and not self._ended and not self._closed:
                self._cond.wait(0.5)
            if self._closed:
                return None
            frame, self._slot = self._slot, None
            return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self, timeout: float = 2.0) -> None:
        """Stop and release (idempotent). A capture blocked in the backend is abandoned after
        `timeout` seconds (daemon thread; it releases the device when its read returns), and
        so is a recorded `read()` stuck in the decoder in another thread.

        Examples:
            >>> src = open_source("liveheat/data/bigbuckbunny.mp4", live=True)
            >>> src.close(); src.close()
        """
        live = self._thread is not None  # live: the lock is only ever held for a moment
        if not self._lock.acquire(timeout=-1 if live else max(0.0, timeout)):
            # a recorded read() holds the lock, stuck in the decoder: mark the source closed
            # (that read's caller gets its frame, every later read None) and release the
            # reader once that read returns, never under it
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._reader.interrupt()
            threading.Thread(
                target=self._close_after_read, name=f"liveheat-close-{self.name}", daemon=True
            ).start()
            return
        try:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
        finally:
            self._lock.release()
        self._reader.interrupt()
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join(timeout)
            # the capture thread closes the reader itself (never release under a blocked read)
        else:
            with self._lock:  # no read can be in progress for long: reads see _closed first
                self._reader.close()

    def _close_after_read(self) -> None:
        with self._lock:
            self._reader.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort: never leave a device open
        try:
            if not self._closed:
                self.close(timeout=0.1)
        except Exception:  # noqa: BLE001
            pass


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


def open_source(
    spec: str | int | os.PathLike,
    *,
    live: bool | None = None,
    loop: bool = False,
    open_timeout: float = 3.0,
    fps: float | None = None,
    reconnect_timeout: float = 30.0,
    read_timeout: float = 5.0,
) -> Source:
    """Open a camera index (0 / "0" / "/dev/video0"), video file, image folder or glob, or a
    stream URL (rtsp://, http(s):// MJPEG) as a `Source`.

    `live=None` picks: cameras and URLs live, files and images recorded. `live=True` on a file
    emulates a camera (paced at the file's fps, newest frame only). `loop=True` restarts a recorded
    file at its end (indices keep increasing; `frame_count` is then None). `fps` sets the rate of
    an image sequence (default 25) or overrides what a file reports. Cameras and URLs that do not
    deliver a frame within `open_timeout` s raise LiveheatError; a URL that breaks later is
    reopened with back-off (0.25 s doubling to 4 s) for up to `reconnect_timeout` s from the
    first loss (a reconnect that drops again within 5 s does not reset either), then the
    source ends with `.error` set; a stream read stalled for `read_timeout` s counts as broken.
    A camera that stops delivering frames for 1 s ends the source with `.error` set. Image
    folders and globs are sorted naturally (2 before 10); unreadable images are skipped with a
    logged warning (listed in `.skipped`); images of another size are resized to the first's.

    Examples:
        >>> src = open_source("liveheat/data/bigbuckbunny.mp4")
        >>> src.live, src.fps, src.size, src.frame_count
        (False, 25.0, (1280, 720), 132)
        >>> sum(1 for _ in src)
        132
        >>> open_source("no/such/clip.mp4")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: no such file or folder: 'no/such/clip.mp4'; ...
    """
    if open_timeout <= 0 or not math.isfinite(open_timeout):
        raise LiveheatError(
            f"open_timeout must be a positive number of seconds, got {open_timeout}"
        )
    if fps is not None and exact_fps(fps) is None:
        raise LiveheatError(f"fps must be a positive number up to 1000, got {fps!r}")
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise LiveheatError(
            f"cannot use {spec!r} as a source; expected a camera index, a path or a URL"
        )
    common = dict(
        open_timeout=open_timeout,
        reconnect_timeout=reconnect_timeout,
        read_timeout=read_timeout,
        fps=fps,
    )
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        if not 0 <= index < MAX_CAMERA_INDEX:
            raise LiveheatError(
                f"camera index {index} is out of range; expected a number from 0 to "
                f"{MAX_CAMERA_INDEX - 1} (usually 0 or 1), a path or a URL"
            )
        reader: _Reader = _CaptureReader(index, kind="camera", name=f"camera {index}", **common)
        return Source(reader, live=True if live is None else live)
    spec = os.fspath(spec)
    if not spec.strip():
        raise LiveheatError("empty source; expected a camera index, a path or a URL")
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else None
    if scheme == "file":
        spec, scheme = spec[len("file://") :], None
    if scheme is not None:
        if scheme not in STREAM_SCHEMES:
            raise LiveheatError(
                f"unsupported URL scheme '{scheme}://' in '{_redact(spec)}'; expected "
                + ", ".join(f"{s}://" for s in STREAM_SCHEMES)
            )
        reader = _CaptureReader(spec, kind="stream", name=f"'{_redact(spec)}'", **common)
        return Source(reader, live=True if live is None else live)
    if spec.startswith("/dev/video"):
        if not os.path.exists(spec):
            raise LiveheatError(f"no camera device '{spec}'; try a camera index such as 0")
        reader = _CaptureReader(spec, kind="camera", name=f"camera '{spec}'", **common)
        return Source(reader, live=True if live is None else live)
    images = _image_files(spec)
    if images is not None:
        files, name = images
        reader = _ImageReader(files, name, fps)
        return Source(reader, live=bool(live), loop=loop)
    if not os.path.exists(spec):
        raise LiveheatError(
            f"no such file or folder: '{spec}'; expected a camera index (0), a video file, an "
            "image folder or glob ('frames/*.png'), or a stream URL (rtsp://, http://)"
        )
    if os.path.isfile(spec) and spec.lower().endswith(IMAGE_EXTENSIONS):
        reader = _ImageReader([spec], f"image '{spec}'", fps)
    else:
        reader = _VideoFileReader(spec, fps)
    return Source(reader, live=bool(live), loop=loop)
