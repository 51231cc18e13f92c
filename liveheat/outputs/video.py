"""A video file output (VideoSink): frames to a file through PyAV, finalised atomically.

What each extension is written with comes from the one codec table (`outputs/codecs.py`):
H.264 in .mp4/.mov/.mkv, VP9 in .webm, MJPEG in .avi unless `codec` names another. One file
is encoded by an `EncodedFile` (`outputs/encode.py`); what a killed run left behind is kept
or removed by `recover_temporaries` (`outputs/recovery.py`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveheat._common.files import check_writable, temp_path
from liveheat._common.images import as_bgr_u8
from liveheat.errors import LiveheatError
from liveheat.outputs.audio import AudioTrack
from liveheat.outputs.base import OutputBase
from liveheat.outputs.codecs import CONTAINERS, EXTENSIONS, FOURCC_CODECS, choose
from liveheat.outputs.encode import EncodedFile, open_audio, probe_encoder, remove_temporary
from liveheat.outputs.recovery import STAMP, recover_temporaries, say_stderr
from liveheat.sources.base import AudioInfo

#: the extensions a VideoSink writes, with the codec each uses unless told (`codecs.py`)
CODECS: dict[str, str] = {ext: c.default for ext, c in CONTAINERS.items()}


def _bgr_u8(image: np.ndarray) -> np.ndarray:
    """A frame to write: uint8 only (a float or 16-bit image is refused, not guessed at),
    made BGR by `as_bgr_u8` (grey and BGRA converted; a BGR frame passes through)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise LiveheatError(
            f"cannot write an image of dtype {image.dtype} and shape {image.shape}; "
            "expected a uint8 BGR frame (H x W x 3)"
        )
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise LiveheatError(f"cannot write an image with {image.shape[2]} channels; expected 3")
    return as_bgr_u8(image)


def _codec_of(codec: str | None, fourcc: str | None) -> str | None:
    """The codec named, or the one an older `fourcc=` names."""
    if fourcc is not None and codec is None:
        if not isinstance(fourcc, str) or fourcc.lower() not in FOURCC_CODECS:
            raise LiveheatError(
                f"unknown fourcc {fourcc!r}; give codec= one of h264, hevc, vp9, av1, mjpeg, mpeg4"
            )
        codec = FOURCC_CODECS[fourcc.lower()]
    return codec


def _checked_fps(fps: Any) -> float:
    try:
        fps_f = float(fps)
    except (TypeError, ValueError):
        fps_f = float("nan")
    if not (0 < fps_f <= 1000):
        raise LiveheatError(f"cannot write video at fps={fps!r}; expected a number in (0, 1000]")
    return fps_f


def _checked_segment(segment: Any) -> float | None:
    if segment is not None and not (isinstance(segment, int | float) and segment >= 1):
        raise LiveheatError(f"segment must be at least 1 second, got {segment!r}")
    return float(segment) if segment is not None else None


def _checked_size(size: Any) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w <= 0 or h <= 0:
        raise LiveheatError(f"video size must be positive (W, H), got {size!r}")
    return w, h


def _segment_path(p: Path, wall: float, taken: list[Path]) -> Path:
    """The next segment of `p`, named by its start time (`NAME-YYYYmmdd-HHMMSS.EXT`)."""
    base = p.name[: len(p.name) - len(p.suffix)]
    name = f"{base}-{time.strftime(STAMP, time.localtime(wall))}"
    cand, k = p.with_name(name + p.suffix), 2
    while cand.exists() or cand in taken:
        cand, k = p.with_name(f"{name}-{k}{p.suffix}"), k + 1
    return cand


def _wall(t: float | None) -> float:
    """Wall-clock time of a `time.monotonic()` capture time (now when None)."""
    now = time.time()
    return now if t is None else now - max(0.0, time.monotonic() - t)


class _Placement:
    """Where a VideoSink's frames go: their size in the file (letterboxed into `size`, padded
    to an even size for the codecs that need it) and their time (`_times`: source pts, one
    after the other, or capture time). The VideoSink sets the attributes named here."""

    size: tuple[int, int] | None
    padded: tuple[int, int] | None
    resized: int
    frames_written: int
    fps: float
    by_timestamp: bool
    codec: str
    choice: Any
    container: Any
    _canvas: np.ndarray | None
    _mode: str
    _src_tb: Fraction | None
    _shown: str
    _say: Callable[[str], None]

    def _place(self, size: Any) -> None:
        """Set the placement up: `size` given or None (the first frame's), the timing mode."""
        # timing: "source" (Frame pts), "index" (one after the other), "clock" (capture
        # time, variable rate), "grid" (capture time on a fixed grid: AVI)
        variable = self.container.variable_rate
        self._mode = ("clock" if variable else "grid") if self.by_timestamp else "index"
        self._src_tb: Fraction | None = None  # "source": the frames' time base
        self.resized = 0
        self.padded: tuple[int, int] | None = None  # the size written when it had to be even
        self.size: tuple[int, int] | None = None
        self._canvas: np.ndarray | None = None
        if size is not None:
            self._set_size(_checked_size(size))

    def _set_size(self, size: tuple[int, int]) -> None:
        self.size = size
        w, h = size
        if not self.choice.codec.odd_sizes and (w % 2 or h % 2):
            self.padded = (w + w % 2, h + h % 2)

    @property
    def _enc_size(self) -> tuple[int, int] | None:
        return self.padded or self.size

    @property
    def _pad(self) -> tuple[int, int] | None:
        """The (right, bottom) edge pixels repeated to make the size even (None: none)."""
        if not self.padded:
            return None
        w, h = self.size  # type: ignore[misc]
        return self.padded[0] - w, self.padded[1] - h

    def _first_size(self, image: np.ndarray) -> None:
        """The file's size from its first frame (when not given), said when padded."""
        self._set_size((image.shape[1], image.shape[0]))
        if self.padded:
            w, h = self.size  # type: ignore[misc]
            self._say(
                f"{self._shown}: {w}x{h} written as {self.padded[0]}x{self.padded[1]} "
                f"({self.codec} needs an even width and height; one edge row/column "
                "repeated)"
            )

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

    def _times(self, frame: Any) -> tuple[float, float]:
        """(time in seconds on this recording's own clock, wall-clock time) of a frame."""
        pts, tb = getattr(frame, "pts", None), getattr(frame, "time_base", None)
        if self.by_timestamp:
            t = getattr(frame, "timestamp", None)
            t = time.monotonic() if t is None else float(t)
            return t, _wall(t)
        variable = self.container.variable_rate  # AVI: one frame after the other
        if pts is not None and tb is not None and variable and self._mode in ("index", "source"):
            if self.frames_written == 0:
                self._mode, self._src_tb = "source", Fraction(tb)
            if self._mode == "source":
                return float(pts * Fraction(tb)), time.time()
        t = getattr(frame, "timestamp", None)
        if self.frames_written == 0 and t is not None:
            return float(t), time.time()
        return self.frames_written / self.fps, time.time()


class VideoSink(_Placement, OutputBase):
    """Write frames to a video file through PyAV; a context manager that always finalises.

    Args:
        path: the file; its extension picks the container and the default codec
            (`codecs.CONTAINERS`: .mp4 .m4v .mov .mkv H.264, .webm VP9, .avi MJPEG).
        fps: the nominal frame rate, kept exact (29.97... is written as 30000/1001).
        size: (W, H) of the file (default: the first frame's); a frame of another size is
            letterboxed into it (scaled to fit, aspect kept, black bars), counted in
            `.resized`. H.264 and HEVC need an even width and height: an odd size is padded
            by one row or column (bottom/right, edge pixels repeated) and said once.
        codec: h264, hevc, vp9, av1, mjpeg or mpeg4 instead of the extension's default.
        crf: the quality (lower: better and larger; mjpeg/mpeg4: their quantiser 2..31).
        encoder_preset: the encoder's speed preset (x264: ultrafast..placebo; VP9: cpu-used
            0..8; SVT-AV1 0..13).
        by_timestamp: live sources: each frame is placed by its capture time
            (`frame.timestamp`, `time.monotonic()`), so the file plays at wall-clock speed
            whatever the camera delivered; a gap longer than `max_gap` seconds (a stream
            reconnecting) restarts the clock. MP4/MOV are then written as fragmented MP4 with
            a keyframe each `codecs.FRAGMENT_S` second: a process killed mid-recording leaves
            a playable file at `.tmp_path` holding all but the last fragment, which the next
            VideoSink on the same path keeps as `NAME.partial-<start time>.EXT`. AVI has no
            variable frame rate: there the last image is repeated to fill time (`.repeated`)
            and a frame more than one slot early is left out (`.skipped`).
        audio: the source's sound (`Source.audio`, a `sources.AudioInfo`), copied or
            re-encoded into the file, cut to the video written; None: no sound.
        segment: seconds: start a new file when the current one holds this much, each named
            by its start time (`NAME-YYYYmmdd-HHMMSS.EXT`) and playable alone (`.files`).
        notice: where one-line notes go (default: stderr, prefixed "liveheat: ").
        fourcc: the older way to name a codec ('avc1', 'mp4v', 'MJPG', 'VP90').

    Frames without a `Frame` (or whose `Frame` has no `pts`/`time_base`) are placed one
    after the other at `fps`; with them (a file read through PyAV) each keeps its source
    presentation time, so variable frame rates stay variable.

    Frames go to a temporary file beside the target (`.NAME.<pid>.tmp.EXT`, `.tmp_path`),
    renamed onto `path` by `close()` once complete: a run that fails before its first frame,
    or whose writing fails (disk full: `LiveheatError` "cannot write OUT: No space left on
    device"), leaves an older file at `path` untouched and no temporary file. A bad path,
    extension, codec, CRF or preset raises LiveheatError before any frame.

    Raises:
        LiveheatError: from the constructor, a path that cannot be written, an extension,
            codec, fourcc, CRF or preset that does not fit, or no encoder for the codec;
            from `write` or `close`, a write that fails (disk full) or a file that cannot be
            finalised.

    Examples:
        >>> import numpy as np
        >>> with VideoSink("/tmp/liveheat-doc.avi", fps=30000 / 1001) as sink:
        ...     for _ in range(3):
        ...         sink.write(np.zeros((120, 160, 3), np.uint8))
        >>> sink.frames_written, sink.codec, sink.size
        (3, 'mjpeg', (160, 120))
    """

    #: a recorder: the runner gives it every frame once, never the repeats of a paused picture
    records = True

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        size: tuple[int, int] | None = None,
        codec: str | None = None,
        crf: int | None = None,
        encoder_preset: str | None = None,
        by_timestamp: bool = False,
        max_gap: float = 5.0,
        audio: AudioInfo | None = None,
        segment: float | None = None,
        notice: Callable[[str], None] | None = None,
        fourcc: str | None = None,
    ) -> None:
        self.path = check_writable(path, "video", suffixes=EXTENSIONS)
        self._shown = os.fspath(path)
        self.choice = choose(os.fspath(self.path), _codec_of(codec, fourcc), crf, encoder_preset)
        if self.choice.encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # errors only: no banner per file
        self.container = self.choice.container
        self.codec = self.choice.codec.name
        self.encoder = self.choice.encoder
        self.fps = _checked_fps(fps)
        #: the stream's nominal rate, exact (30000/1001)
        self.rate = Fraction(self.fps).limit_denominator(1001)
        self.segment = _checked_segment(segment)
        self.by_timestamp = bool(by_timestamp)
        self.max_gap = float(max_gap)
        self._notice = notice or say_stderr
        self.audio_source = audio
        self.notices: list[str] = []
        self.fragmented = self.by_timestamp and self.container.fragmented
        self.repeated = 0  # grid: copies of the previous image written to fill time
        self.skipped = 0  # grid: frames that came more than one slot early
        self.frames_written = 0  # in every file
        self.files: list[Path] = []  # finished files, in order
        self.failed: str | None = None
        self.audio_note: str | None = None  # how the sound was written, or why not
        self._closed = False
        self._lock = threading.Lock()
        self._file: EncodedFile | None = None  # the file being written
        #: where the current file is written until it is complete
        self.tmp_path = temp_path(self.path)
        self._cur = self.path
        self._place(size)
        probe_encoder(
            self.choice, self._enc_size or (64, 64), self.rate, self.by_timestamp, self._shown
        )
        self.recovered = recover_temporaries(self.path, self._say)

    # ------------------------------------------------------------------ set-up
    def _say(self, text: str) -> None:
        self.notices.append(text)
        self._notice(text)

    @property
    def fourcc(self) -> str:
        """The codec's four-character code (avc1, vp09, MJPG, mp4v, ...)."""
        return self.choice.codec.fourcc

    @property
    def audio(self) -> AudioTrack | None:
        """The current file's sound (None: none, or no file open)."""
        return self._file.audio if self._file is not None else None

    # ------------------------------------------------------------------ one file
    def _open_file(self, start_s: float, wall: float) -> EncodedFile:
        """Open the next file: the target, or the next segment named by its start time."""
        if self.segment is not None:
            self._cur = _segment_path(self.path, wall, self.files)
        else:
            self._cur = self.path
        self.tmp_path = temp_path(self._cur)
        self._file = EncodedFile(
            self.tmp_path,
            self.choice,
            rate=self.rate,
            fps=self.fps,
            size=self._enc_size,  # type: ignore[arg-type]
            pad=self._pad,
            mode=self._mode,
            src_tb=self._src_tb,
            live=self.by_timestamp,
            fragmented=self.fragmented,
            keyed=self.fragmented or self.segment is not None,
            max_gap=self.max_gap,
            start_s=start_s,
            wall=wall,
            add_audio=self._audio_open,
            tally=self,
        )
        return self._file

    def _audio_open(self, out: Any, start_s: float) -> AudioTrack | None:
        src = self.audio_source
        if src is None or self.by_timestamp:
            return None
        if self.segment is not None:
            if not self.files:
                self._say(f"the sound is not written into segments ({self._shown})")
            return None
        audio, self.audio_note = open_audio(
            src, out, self.container, start_s, self._say, self._shown
        )
        return audio

    def _finish_file(self) -> None:
        """Flush the encoder and the sound, write the index, move the file into place."""
        f, self._file = self._file, None
        f.finish(self._cur)  # type: ignore[union-attr]
        self.files.append(self._cur)

    def write(self, image: np.ndarray, frame: Any = None, annotation: Any = None) -> None:
        """Append one image (uint8 BGR; gray and BGRA are converted). `frame` gives its time:
        `pts`/`time_base` (source time) or, with `by_timestamp`, `timestamp` (capture time).

        Raises:
            LiveheatError: a bad image, a closed sink, or the file cannot be written (one
                line: "cannot write OUT: No space left on device"); the target is untouched.

        Examples:
            >>> sink = VideoSink("/tmp/liveheat-doc.mp4", fps=25)
            >>> sink.write(np.zeros((90, 160, 3), np.uint8)); sink.close(); sink.frames_written
            1
        """
        import av

        image = _bgr_u8(image)
        with self._lock:
            if self._closed:
                raise LiveheatError(
                    f"video '{self._shown}' is already closed; open a new VideoSink"
                )
            if self.failed is not None:
                raise LiveheatError(self.failed)
            if self.size is None:
                self._first_size(image)
            if (image.shape[1], image.shape[0]) != self.size:
                image = self._fit(image)
                self.resized += 1
            try:
                t, wall = self._times(frame)
                f = self._file
                if f is not None and self.segment is not None and t - f.start_s >= self.segment:
                    self._finish_file()
                    f = None
                if f is None:
                    f = self._open_file(t, wall)
                f.put(image, t, frame)
            except (OSError, av.FFmpegError) as e:
                raise self._fail(e) from None

    def _fail(self, e: Exception) -> LiveheatError:
        """A write error: drop the unfinished file (never the target) and say it in one line."""
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        self.failed = f"cannot write {os.fspath(self._cur)}: {reason}"
        f, self._file = self._file, None
        if f is not None:
            f.abort()
        remove_temporary(self.tmp_path)
        return LiveheatError(self.failed)

    # ------------------------------------------------------------------ the end
    def close(self) -> None:
        """Finalise the file so it plays and move it to `path` (idempotent); with no frame
        written, or after a write error, leave `path` as it was and no temporary file.

        Raises:
            LiveheatError: the file could not be finished ("cannot write OUT: ...").
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._file is None:
                return
            import av

            try:
                self._finish_file()
            except (OSError, av.FFmpegError) as e:
                raise self._fail(e) from None

    def __repr__(self) -> str:
        return (
            f"<VideoSink '{self._shown}' {self.choice.describe()} {self.size} fps={self.fps:g} "
            f"frames={self.frames_written}>"
        )
