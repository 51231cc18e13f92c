"""A video file output (VideoSink): frames to a file, finalised atomically."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveheat.errors import LiveheatError

# ------------------------------------------------------------------------------------ video file

#: fourcc chain per extension, tried in order until cv2.VideoWriter opens (no H.264 in the wheel)
CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("mp4v", "avc1"),
    ".m4v": ("mp4v", "avc1"),
    ".mov": ("mp4v", "MJPG"),
    ".avi": ("MJPG", "XVID", "mp4v"),
    ".webm": ("VP80", "VP90"),
    ".mkv": ("mp4v", "XVID", "MJPG", "VP80"),
}


def _bgr_u8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise LiveheatError(
            f"cannot write an image of dtype {image.dtype} and shape {image.shape}; "
            "expected a uint8 BGR frame (H x W x 3)"
        )
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] != 3:
        raise LiveheatError(f"cannot write an image with {image.shape[2]} channels; expected 3")
    return image


class VideoSink:
    """Write frames to a video file with cv2.VideoWriter; a context manager that always finalises.

    The codec comes from the extension (`CODECS`: .mp4/.m4v mp4v, .mov, .avi MJPG then XVID,
    .webm VP80 then VP90, .mkv), trying each until the writer opens. `fps` is passed on as a float,
    unrounded (30000/1001 stays 29.97...). `size` (W, H) defaults to the first frame's size; a
    frame of another size (e.g. panels toggled on) is letterboxed into it (scaled to fit, aspect
    kept, black bars) and counted in `.resized`. A bad path or extension or no working codec raises
    LiveheatError before any frame.

    Frames go to a temporary file beside the target (`.NAME.<pid>.tmp.EXT`, `.tmp_path`), which
    `close()` renames onto `path` once at least one frame was written: a run that fails before
    its first frame leaves an existing file untouched, and an interrupted one still ends with a
    finalised file at `path`. A sink closed with no frame written removes its temporary file.

    `by_timestamp=True` (live sources) places each frame by its `frame.timestamp` instead of
    one after the other: the last image is repeated until round((t - t0) * fps) frames are
    written, so a camera that delivers fewer frames than its fps (or a run that drops some)
    still gives a file that plays at wall-clock speed (`.repeated` counts the copies; a frame
    more than one slot early is left out, counted in `.skipped`). A gap longer than `max_gap`
    seconds (a pause, a stream reconnecting) restarts the clock instead of filling it.

    Examples:
        >>> import numpy as np
        >>> with VideoSink("/tmp/liveheat-doc.avi", fps=30000 / 1001) as sink:
        ...     for _ in range(3):
        ...         sink.write(np.zeros((120, 160, 3), np.uint8))
        >>> sink.frames_written, sink.fourcc, sink.size
        (3, 'MJPG', (160, 120))
    """

    #: a recorder: the runner gives it every frame once, never the repeats of a paused picture
    records = True

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        size: tuple[int, int] | None = None,
        fourcc: str | None = None,
        by_timestamp: bool = False,
        max_gap: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.by_timestamp = bool(by_timestamp)
        self.max_gap = float(max_gap)
        self.repeated = 0  # by_timestamp: copies of the previous image written to fill time
        self.skipped = 0  # by_timestamp: frames that came more than one slot early
        self._t0: float | None = None
        self._prev: np.ndarray | None = None
        ext = self.path.suffix.lower()
        if fourcc is not None:
            if len(fourcc) != 4:
                raise LiveheatError(f"fourcc must be 4 characters (e.g. 'mp4v'), got {fourcc!r}")
            self.codecs: tuple[str, ...] = (fourcc,)
        elif ext in CODECS:
            self.codecs = CODECS[ext]
        else:
            raise LiveheatError(
                f"cannot write video '{self.path}': unsupported extension '{ext or '(none)'}'; "
                f"use one of {', '.join(CODECS)}"
            )
        try:
            fps_f = float(fps)
        except (TypeError, ValueError):
            fps_f = float("nan")
        if not (0 < fps_f <= 1000):
            raise LiveheatError(
                f"cannot write video at fps={fps!r}; expected a number in (0, 1000]"
            )
        self.fps = fps_f
        if self.path.is_dir():
            raise LiveheatError(
                f"cannot write video '{self.path}': it is a folder; give a file name"
            )
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise LiveheatError(
                f"cannot write video '{self.path}': folder '{parent}' does not exist; create it "
                "or choose another path"
            )
        if not os.access(parent, os.W_OK) or (
            self.path.exists() and not os.access(self.path, os.W_OK)
        ):
            raise LiveheatError(
                f"cannot write video '{self.path}': permission denied; choose a writable path"
            )
        base = self.path.name[: len(self.path.name) - len(self.path.suffix)]
        #: where frames are written until close() renames the file onto `path`
        self.tmp_path = self.path.with_name(f".{base}.{os.getpid()}.tmp{self.path.suffix}")
        self.size: tuple[int, int] | None = None
        self.fourcc: str | None = None
        self.frames_written = 0
        self.resized = 0
        self._writer: cv2.VideoWriter | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._canvas: np.ndarray | None = None
        if size is not None:
            w, h = (int(v) for v in size)
            if w <= 0 or h <= 0:
                raise LiveheatError(f"video size must be positive (W, H), got {size!r}")
            self._open((w, h))
        else:
            self._probe()

    def _try_open(self, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str] | None:
        for code in self.codecs:
            writer = cv2.VideoWriter(
                str(self.tmp_path), cv2.VideoWriter_fourcc(*code), self.fps, size, True
            )
            if writer.isOpened():
                return writer, code
            writer.release()
        return None

    def _no_codec(self) -> LiveheatError:
        self._remove_file()
        alt = ".avi (MJPG)" if self.path.suffix.lower() != ".avi" else ".mp4 (mp4v)"
        return LiveheatError(
            f"cannot write video '{self.path}': no working codec (tried "
            f"{', '.join(self.codecs)}); try another extension such as {alt}"
        )

    def _probe(self) -> None:
        """No size yet: check now (before any frame) that some codec opens, then wait."""
        opened = self._try_open((64, 64))
        if opened is None:
            raise self._no_codec()
        opened[0].release()
        self.fourcc = opened[1]
        self.codecs = (opened[1],) + tuple(c for c in self.codecs if c != opened[1])
        self._remove_file()

    def _open(self, size: tuple[int, int]) -> None:
        opened = self._try_open(size)
        if opened is None:
            raise self._no_codec()
        self._writer, self.fourcc = opened
        self.size = size

    def _remove_file(self) -> None:
        """Remove the temporary file (never the target: an old file there stays intact)."""
        try:
            if self.tmp_path.is_file():
                self.tmp_path.unlink()
        except OSError:
            pass

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Letterbox `image` into self.size (scale to fit, keep aspect, black bars)."""
        w, h = self.size  # type: ignore[misc]
        ih, iw = image.shape[:2]
        scale = min(w / iw, h / ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        if self._canvas is None:
            self._canvas = np.zeros((h, w, 3), np.uint8)
        canvas = self._canvas
        canvas[:] = 0
        x, y = (w - nw) // 2, (h - nh) // 2
        canvas[y : y + nh, x : x + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
        return canvas

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        """Append one image (uint8 BGR; gray and BGRA are converted). `frame` (its
        `.timestamp`) is used only with `by_timestamp`.

        Examples:
            >>> sink = VideoSink("/tmp/liveheat-doc.mp4", fps=25)
            >>> sink.write(np.zeros((90, 160, 3), np.uint8)); sink.close(); sink.frames_written
            1
        """
        image = _bgr_u8(image)
        with self._lock:
            if self._closed:
                raise LiveheatError(f"video '{self.path}' is already closed; open a new VideoSink")
            if self._writer is None:
                self._open((image.shape[1], image.shape[0]))
            if (image.shape[1], image.shape[0]) != self.size:
                image = self._fit(image)
                self.resized += 1
            assert self._writer is not None
            image = np.ascontiguousarray(image)
            t = getattr(frame, "timestamp", None) if self.by_timestamp else None
            if t is not None and not self._catch_up(float(t)):
                self.skipped += 1
                return
            self._writer.write(image)
            self.frames_written += 1
            if t is not None:
                if self._prev is None:
                    self._prev = np.empty_like(image)
                np.copyto(self._prev, image)  # (the letterbox canvas is reused)

    def _catch_up(self, t: float) -> bool:
        """by_timestamp: repeat the last image up to the slot of time `t`; False when the
        frame is more than one slot early (leave it out)."""
        if self._t0 is None:
            self._t0 = t
        behind = round((t - self._t0) * self.fps) - self.frames_written
        if abs(behind) > self.max_gap * self.fps or self._prev is None:  # long gap: new clock
            self._t0 = t - self.frames_written / self.fps
            behind = 0
        if behind < -1:
            return False
        assert self._writer is not None
        for _ in range(behind):
            self._writer.write(self._prev)
            self.frames_written += 1
            self.repeated += 1
        return True

    def close(self) -> None:
        """Finalise the file so it plays and move it to `path` (idempotent); with no frame
        written, remove the temporary file and leave `path` as it was."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.release()
            if self.frames_written == 0:
                self._remove_file()
                return
            try:
                os.replace(self.tmp_path, self.path)
            except OSError as e:
                raise LiveheatError(
                    f"cannot write video '{self.path}': {e.strerror or e}; the frames are in "
                    f"'{self.tmp_path}'"
                ) from None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<VideoSink '{self.path}' {self.fourcc} {self.size} fps={self.fps} "
            f"frames={self.frames_written}>"
        )
