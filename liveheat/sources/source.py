"""Source, the one object every reader is used through, and open_source."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator

from liveheat.errors import LiveheatError
from liveheat.sources.base import (
    BUNDLED_CLIP,
    IMAGE_EXTENSIONS,
    MAX_CAMERA_INDEX,
    STREAM_SCHEMES,
    Frame,
    _Reader,
    _redact,
    exact_fps,
)
from liveheat.sources.capture import _CaptureReader
from liveheat.sources.file import _VideoFileReader
from liveheat.sources.images import _image_files, _ImageReader

__all__ = ["BUNDLED_CLIP", "Source", "open_source"]

# ---------------------------------------------------------------------------------------------


class Source:
    """Frames from one place: an iterator and context manager of `Frame`; `.read()` -> Frame|None.

    Recorded (`live=False`): every frame in order, read in the caller's thread, none dropped.
    Live (`live=True`): a daemon capture thread keeps only the newest frame; `read()` blocks until
    a frame newer than the last one returned and returns the newest, counting the ones it skipped
    in `.dropped`. A live file (camera emulation) is paced at its fps in real time.
    Made by `open_source`; closed by `close()`, at the end of a `with` block, or when collected.

    Args:
        reader: the backend reader (`open_source` picks it).
        live: newest frame only, from a capture thread (see above).
        loop: a recorded file restarts at its end.

    Attributes:
        name: the source as messages show it (a URL without its password).
        kind: "camera", "file", "images" or "stream".
        live: as given.
        fps: the frame rate (NTSC rates exact), None when unknown.
        size: (W, H) of every frame.
        frame_count: the number of frames (recorded, not looping), else None.
        dropped: frames a live source captured but nobody read.
        captured: frames taken from the backend.
        error: why it ended early, else None.
        audio: a video file's sound (`AudioInfo`), else None.

    Examples:
        >>> with open_source(BUNDLED_CLIP) as src:
        ...     first = src.read()
        >>> first.index, first.image.shape, src.fps
        (0, (720, 1280, 3), 25.0)
        >>> src.kind, src.name, src.error
        ('file', 'bigbuckbunny.mp4', None)
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
        self.audio = reader.audio  # (a live file's too: its writer says it is not kept)
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
        """The paths of images that could not be read (image folders and globs), in order."""
        return list(getattr(self._reader, "skipped", []))

    @property
    def skipped_frames(self) -> int:
        """Damaged frames of a video file left out where the decoder recovered (0 otherwise)."""
        return int(self._reader.skipped_frames)

    @property
    def note(self) -> str | None:
        """One line for a run that went on past damaged frames (`skipped_frames`), else None."""
        n = self.skipped_frames
        shown = self.name if self.name.startswith("'") else f"'{self.name}'"
        return f"skipped {n} damaged frame{'s' * (n != 1)} of {shown}" if n else None

    @property
    def reconnects(self) -> int:
        """How many times a stream came back after breaking (0 for other sources)."""
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
        self._index += 1
        self.captured += 1
        return reader.frame(image, self._index - 1, self.fps)  # with its own time

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

        A live read blocks until a frame newer than the last one returned has been captured.

        Returns:
            The `Frame`, or None once the source has ended or is closed (`.error` says why
            one ended early).

        Examples:
            >>> src = open_source(BUNDLED_CLIP)
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
        """`read()` until the end.

        Examples:
            >>> with open_source(BUNDLED_CLIP) as src:
            ...     indices = [frame.index for frame in src]
            >>> len(indices), indices[-1]
            (132, 131)
        """
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def close(self, timeout: float = 2.0) -> None:
        """Stop and release (idempotent). A capture blocked in the backend is abandoned after
        `timeout` seconds (daemon thread; it releases the device when its read returns), and
        so is a recorded `read()` stuck in the decoder in another thread.

        Args:
            timeout: seconds to wait for a blocked capture or read before abandoning it.

        Examples:
            >>> src = open_source(BUNDLED_CLIP, live=True)
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


def _check_regular(path: str) -> None:
    """A file source must be a regular file: a FIFO, socket or other device would hang the
    decoder (a FIFO with no writer blocks forever, deaf to Ctrl-C) or stream without end."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise LiveheatError(f"cannot open '{path}': {e.strerror}") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = (
        "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "a device"
    )  # fmt: skip
    raise LiveheatError(
        f"'{path}' is {kind}, not a video file; give a file, a folder of images, a camera "
        "index (0) or /dev/videoN, or a stream URL"
    )


def open_source(
    spec: str | int | os.PathLike,
    *,
    live: bool | None = None,
    loop: bool = False,
    open_timeout: float = 3.0,
    fps: float | None = None,
    reconnect_timeout: float = 30.0,
    read_timeout: float = 5.0,
    camera: dict | None = None,
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

    Args:
        spec: a camera index (0, "0") or device ("/dev/video0"), a video file, an image, an
            image folder or glob ("frames/*.png"), or a URL (rtsp://, http(s)://, file://).
        live: newest frame only, from a capture thread; None: cameras and URLs live, files
            and images recorded.
        loop: restart a recorded file or image sequence at its end.
        open_timeout: seconds a camera or URL has to deliver its first frame.
        fps: the rate of an image sequence (default 25), or one overriding a file's.
        reconnect_timeout: seconds a broken stream is retried from its first loss.
        read_timeout: seconds a stream read may stall before it counts as broken.
        camera: what to ask a camera for: ``size`` (w, h), ``fps``, ``fourcc`` ("MJPG"),
            ``backend`` ("v4l2", ...); what it grants instead is said in one line.

    Returns:
        The open `Source` (its first frame already read, so `size` is known).

    Raises:
        LiveheatError: a path that does not exist, a file FFmpeg cannot read, a folder with
            no images, a camera or URL that gives no frame within `open_timeout`, an unknown
            URL scheme, or a bad `fps` or `open_timeout`.

    Examples:
        >>> src = open_source(BUNDLED_CLIP)
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
        reader: _Reader = _CaptureReader(
            index, kind="camera", name=f"camera {index}", camera=camera, **common
        )
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
        reader = _CaptureReader(
            spec, kind="camera", name=f"camera '{spec}'", camera=camera, **common
        )
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
    _check_regular(spec)
    if os.path.isfile(spec) and spec.lower().endswith(IMAGE_EXTENSIONS):
        reader = _ImageReader([spec], f"image '{spec}'", fps)
    else:
        reader = _VideoFileReader(spec, fps)
    return Source(reader, live=bool(live), loop=loop)
