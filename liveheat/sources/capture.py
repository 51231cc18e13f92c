"""A camera or stream URL reader (OpenCV capture) with timeouts and reconnects."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from liveheat._common.images import as_bgr_u8
from liveheat._common.system import quiet_opencv
from liveheat.errors import LiveheatError
from liveheat.sources.base import (
    HEALTHY_S,
    _call_with_timeout,
    _cv_reason,
    _Reader,
    _release,
    exact_fps,
    log,
)

# a stream whose reads fail this many times in a row, or for this long, is lost (reconnect);
# fewer are damaged frames, skipped and counted
BAD_RUN = 25
BAD_RUN_S = 2.0


_BACKENDS = {
    "any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "gstreamer": cv2.CAP_GSTREAMER,
    "dshow": cv2.CAP_DSHOW, "msmf": cv2.CAP_MSMF, "avfoundation": cv2.CAP_AVFOUNDATION,
}  # fmt: skip


def _ask(cap: cv2.VideoCapture, want: dict) -> None:
    """Ask an opened camera for a pixel format, size and rate (the format first: with V4L2
    it decides which sizes and rates exist). Whatever it grants is read back later."""
    if want.get("fourcc"):
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*want["fourcc"]))
    if want.get("size"):
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, want["size"][0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, want["size"][1])
    if want.get("fps"):
        cap.set(cv2.CAP_PROP_FPS, float(want["fps"]))


def _fourcc_text(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4))
    return text if code and text.isprintable() else "?"


def granted(cap: cv2.VideoCapture, want: dict, size: tuple[int, int]) -> str | None:
    """What the camera gave where it differs from what was asked ("1280x720, 30 fps, YUYV
    (asked 640x480, 60 fps, MJPG)"), or None when it gave all (or nothing was asked)."""
    got, asked = [], []
    if want.get("size") and tuple(want["size"]) != tuple(size):
        got.append(f"{size[0]}x{size[1]}")
        asked.append(f"{want['size'][0]}x{want['size'][1]}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if want.get("fps") and abs(fps - float(want["fps"])) > 0.01 * float(want["fps"]):
        got.append(f"{fps:g} fps" if fps > 0 else "an unknown rate")
        asked.append(f"{float(want['fps']):g} fps")
    fourcc = _fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
    if want.get("fourcc") and fourcc.upper() != want["fourcc"].upper():
        got.append(fourcc)
        asked.append(want["fourcc"])
    return f"{', '.join(got)} (asked {', '.join(asked)})" if got else None


def _say_granted(cap: cv2.VideoCapture, want: dict, size: tuple[int, int], name: str) -> None:
    text = granted(cap, want, size)
    if text:
        log.warning("liveheat: %s gives %s", name, text)


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
        camera: dict | None = None,
    ) -> None:
        self.kind = kind
        self.camera = dict(camera or {})  # what to ask a camera for: size, fps, fourcc, backend
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
        self._bad_since: float | None = None  # the first failed read of a run of them
        self._bad_run = 0
        self.skipped_frames = 0  # damaged stream frames skipped (the stream kept going)
        cap, first = _call_with_timeout(self._connect, self.open_timeout, self._drop, name)
        if cap is None:
            raise LiveheatError(self._open_failure())
        self._cap: cv2.VideoCapture | None = cap
        self._first: np.ndarray | None = first
        self.size = (first.shape[1], first.shape[0])
        if kind == "camera":
            _say_granted(cap, self.camera, self.size, name)
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
        with quiet_opencv():
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
                backend = self.camera.get("backend") or "any"
                cap = cv2.VideoCapture(self.target, _BACKENDS.get(backend, cv2.CAP_ANY))
        except cv2.error as e:  # OpenCV rejects the argument itself (bad index or address)
            raise LiveheatError(
                f"cannot open {self.name}: OpenCV refused it ({_cv_reason(e)})"
            ) from None
        try:
            if not cap.isOpened():
                _release(cap)
                return None, None
            if self.kind == "camera":
                _ask(cap, self.camera)
            ok, image = cap.read()
        except cv2.error:
            ok, image = False, None
        if not ok or image is None:
            _release(cap)
            return None, None
        return cap, as_bgr_u8(image)

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
                if self._bad_since is not None:  # reads recovered: those were damaged frames
                    self.skipped_frames += self._bad_run
                self._lost_since = self._bad_since = None
                if (
                    self._outage_since is not None
                    and time.monotonic() - self._connected_at >= HEALTHY_S
                ):  # the reconnected stream stayed up: the outage is over, back-off resets
                    self._outage_since, self._outage_reconnects, self._delay = None, 0, 0.0
                return self._fit(as_bgr_u8(image))
            if self._stop.is_set():
                return None
            if self.kind == "camera":
                return self._camera_hiccup()
            if self._bad_frame(cap):
                continue  # one damaged frame (a corrupt JPEG, a wrong length): skipped, counted
            image = self._reconnect()
            if image is not None:
                return image
            return None
        return None

    def _bad_frame(self, cap: cv2.VideoCapture | None) -> bool:
        """A stream read failed on an open capture: a damaged frame when reads recover within
        BAD_RUN reads and BAD_RUN_S seconds (counted in `skipped_frames` once a good frame
        follows); False when they keep failing: the stream is lost (reconnect)."""
        now = time.monotonic()
        if cap is None or not cap.isOpened():
            return False
        if self._bad_since is None:
            self._bad_since, self._bad_run = now, 0
        self._bad_run += 1
        if self._bad_run > BAD_RUN or now - self._bad_since > BAD_RUN_S:
            self._bad_since = None  # not damaged frames: the stream is gone
            return False
        return True

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
                return self._fit(as_bgr_u8(image))
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
