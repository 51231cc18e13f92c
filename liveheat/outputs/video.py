"""A video file output (VideoSink): frames to a file through PyAV, finalised atomically.

What each extension is written with comes from the one codec table (`outputs/codecs.py`):
H.264 in .mp4/.mov/.mkv, VP9 in .webm, MJPEG in .avi unless `codec` names another.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import struct
import sys
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
from liveheat.outputs.audio import AudioNotCarried, AudioSource, AudioTrack
from liveheat.outputs.base import OutputBase
from liveheat.outputs.codecs import CONTAINERS, EXTENSIONS, FOURCC_CODECS, FRAGMENT_S, choose

#: the extensions a VideoSink writes, with the codec each uses unless told (`codecs.py`)
CODECS: dict[str, str] = {ext: c.default for ext, c in CONTAINERS.items()}

_CLOCK_TB = {"mp4": Fraction(1, 90000), "mov": Fraction(1, 90000)}  # live: a fine time base
_MS = Fraction(1, 1000)  # Matroska / WebM count milliseconds
_TEMP = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.tmp(?P<ext>\.[A-Za-z0-9]+)$")
_STAMP = "%Y%m%d-%H%M%S"


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


def _say(text: str) -> None:
    print(f"liveheat: {text}", file=sys.stderr, flush=True)


def _wall(t: float | None) -> float:
    """Wall-clock time of a `time.monotonic()` capture time (now when None)."""
    now = time.time()
    return now if t is None else now - max(0.0, time.monotonic() - t)


class VideoSink(OutputBase):
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
        audio: the source's sound (`AudioSource`), copied or re-encoded into the file, cut to
            the video written; None: no sound.
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
        audio: AudioSource | None = None,
        segment: float | None = None,
        notice: Callable[[str], None] | None = None,
        fourcc: str | None = None,
    ) -> None:
        self.path = check_writable(path, "video", suffixes=EXTENSIONS)
        self._shown = os.fspath(path)
        if fourcc is not None and codec is None:
            if not isinstance(fourcc, str) or fourcc.lower() not in FOURCC_CODECS:
                raise LiveheatError(
                    f"unknown fourcc {fourcc!r}; give codec= one of h264, hevc, vp9, av1, "
                    "mjpeg, mpeg4"
                )
            codec = FOURCC_CODECS[fourcc.lower()]
        self.choice = choose(os.fspath(self.path), codec, crf, encoder_preset)
        if self.choice.encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # errors only: no banner per file
        self.container = self.choice.container
        self.codec = self.choice.codec.name
        self.encoder = self.choice.encoder
        try:
            fps_f = float(fps)
        except (TypeError, ValueError):
            fps_f = float("nan")
        if not (0 < fps_f <= 1000):
            raise LiveheatError(
                f"cannot write video at fps={fps!r}; expected a number in (0, 1000]"
            )
        self.fps = fps_f
        #: the stream's nominal rate, exact (30000/1001)
        self.rate = Fraction(fps_f).limit_denominator(1001)
        if segment is not None and not (isinstance(segment, int | float) and segment >= 1):
            raise LiveheatError(f"segment must be at least 1 second, got {segment!r}")
        self.segment = float(segment) if segment is not None else None
        self.by_timestamp = bool(by_timestamp)
        self.max_gap = float(max_gap)
        self._notice = notice or _say
        self.audio_source = audio
        self.notices: list[str] = []
        # timing: "source" (Frame pts), "index" (one after the other), "clock" (capture
        # time, variable rate), "grid" (capture time on a fixed grid: AVI)
        if self.by_timestamp:
            self._mode = "clock" if self.container.variable_rate else "grid"
        else:
            self._mode = "index"
        self.fragmented = self.by_timestamp and self.container.fragmented
        self.repeated = 0  # grid: copies of the previous image written to fill time
        self.skipped = 0  # grid: frames that came more than one slot early
        self.frames_written = 0  # in every file
        self.resized = 0
        self.padded: tuple[int, int] | None = None  # the size written when it had to be even
        self.size: tuple[int, int] | None = None
        self.files: list[Path] = []  # finished files, in order
        self.failed: str | None = None
        self.audio: AudioTrack | None = None  # the current file's sound
        self.audio_note: str | None = None  # how the sound was written, or why not
        self._closed = False
        self._lock = threading.Lock()
        self._canvas: np.ndarray | None = None
        self._out: Any = None
        self._vst: Any = None
        self._prev: np.ndarray | None = None
        #: where the current file is written until it is complete
        self.tmp_path = temp_path(self.path)
        self._cur = self.path
        if size is not None:
            w, h = (int(v) for v in size)
            if w <= 0 or h <= 0:
                raise LiveheatError(f"video size must be positive (W, H), got {size!r}")
            self._set_size((w, h))
        self._probe_encoder(self._enc_size or (64, 64))
        self.recovered = recover_temporaries(self.path, self._say)

    # ------------------------------------------------------------------ set-up
    def _say(self, text: str) -> None:
        self.notices.append(text)
        self._notice(text)

    @property
    def fourcc(self) -> str:
        """The codec's four-character code (avc1, vp09, MJPG, mp4v, ...)."""
        return self.choice.codec.fourcc

    def _set_size(self, size: tuple[int, int]) -> None:
        self.size = size
        w, h = size
        if not self.choice.codec.odd_sizes and (w % 2 or h % 2):
            self.padded = (w + w % 2, h + h % 2)

    @property
    def _enc_size(self) -> tuple[int, int] | None:
        return self.padded or self.size

    def _probe_encoder(self, size: tuple[int, int]) -> None:
        """Open the encoder once now, so that a preset it refuses fails before any frame."""
        import av

        try:
            cc = av.CodecContext.create(self.encoder, "w")
            cc.width, cc.height = size
            cc.pix_fmt = self.choice.codec.pix_fmt
            cc.time_base = 1 / self.rate
            cc.framerate = self.rate
            cc.options = self.choice.options(live=self.by_timestamp)
            with _quiet_libs():
                cc.open()
            del cc  # freed (closed) with its last reference
        except av.FFmpegError as e:
            raise LiveheatError(
                f"cannot write video '{self._shown}': the {self.encoder} encoder refused "
                f"{self.choice.describe()} ({e.strerror or e}); try another --encoder-preset "
                "or --codec"
            ) from None

    # ------------------------------------------------------------------ one file
    def _open_file(self, start_s: float, wall: float) -> None:
        """Open the next file: the target, or the next segment named by its start time."""
        import av

        if self.segment is not None:
            self._cur = self._segment_path(wall)
        else:
            self._cur = self.path
        self.tmp_path = temp_path(self._cur)
        cont = self.container
        opts: dict[str, str] = {}
        if self.fragmented:
            opts["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
            opts["frag_duration"] = str(int(FRAGMENT_S * 2_000_000))  # a backstop: 2 s
            opts["flush_packets"] = "1"
        elif cont.faststart:
            opts["movflags"] = "+faststart"
        out = av.open(os.fspath(self.tmp_path), "w", format=cont.format, options=opts)
        try:
            stamp = _dt.datetime.fromtimestamp(wall, _dt.timezone.utc)
            out.metadata["creation_time"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            vc = self.choice.codec
            if self._mode == "source":
                # Matroska counts milliseconds: rounded here, so two frames never share one
                tb = _MS if cont.format in ("matroska", "webm") else self._src_tb
            elif self._mode == "clock":
                tb = _CLOCK_TB.get(cont.format, _MS)
            else:
                tb = 1 / self.rate
            self._tb = tb
            vst = out.add_stream(
                self.encoder, rate=self.rate, options=self.choice.options(live=self.by_timestamp)
            )
            w, h = self._enc_size  # type: ignore[misc]
            vst.width, vst.height, vst.pix_fmt = w, h, vc.pix_fmt
            vst.time_base = tb
            cc = vst.codec_context
            cc.time_base = tb
            cc.framerate = self.rate
            # BT.601, as cv2's I420 conversion (and MJPEG's full range) makes it
            cc.colorspace = 6  # SMPTE 170M
            cc.color_primaries = 6
            cc.color_trc = 6
            cc.color_range = 2 if vc.pix_fmt.startswith("yuvj") else 1
            if self.fragmented or self.segment is not None:
                cc.gop_size = max(1, round(2 * FRAGMENT_S * self.fps))
            if vc.name == "hevc" and cont.format in ("mp4", "mov"):
                vst.codec_tag = "hvc1"  # what Apple players want
            self._audio_open(out, start_s)
        except BaseException:
            with contextlib.suppress(Exception):
                out.close()
            self._remove(self.tmp_path)
            raise
        self._out, self._vst = out, vst
        self._file_frames = 0
        self._last_pts: int | None = None
        self._last_key_s = -1e9
        self._origin: Any = None  # the first frame's time: pts, clock seconds or slot

    def _audio_open(self, out: Any, start_s: float) -> None:
        self.audio = None
        src = self.audio_source
        if src is None or self.by_timestamp:
            return
        if self.segment is not None:
            if not self.files:
                self._say(f"the sound is not written into segments ({self._shown})")
            return
        try:
            self.audio = AudioTrack(src, out, self.container, start_s=start_s, notice=self._say)
            self.audio_note = f"sound: {self.audio.what}"
        except AudioNotCarried as e:
            self.audio_note = f"no sound: {e}"
            self._say(f"{self._shown}: no sound: {e}")

    def _segment_path(self, wall: float) -> Path:
        p = self.path
        base = p.name[: len(p.name) - len(p.suffix)]
        name = f"{base}-{time.strftime(_STAMP, time.localtime(wall))}"
        cand, k = p.with_name(name + p.suffix), 2
        while cand.exists() or cand in self.files:
            cand, k = p.with_name(f"{name}-{k}{p.suffix}"), k + 1
        return cand

    def _finish_file(self) -> None:
        """Flush the encoder and the sound, write the index, move the file into place."""
        out, vst = self._out, self._vst
        self._out = self._vst = None
        try:
            for p in vst.encode(None):
                out.mux(p)
            if self.audio is not None:
                self.audio.finish(self._file_end_s(), out)
        finally:
            audio, self.audio = self.audio, None
            if audio is not None:
                audio.close()
            out.close()  # faststart: the index is moved to the front here
        os.replace(self.tmp_path, self._cur)
        self.files.append(self._cur)

    def _file_end_s(self) -> float:
        """The output time where the current file's last video frame ends."""
        if self._last_pts is None:
            return 0.0
        return float(self._last_pts * self._tb) + 1 / self.fps

    # ------------------------------------------------------------------ frames
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
                self._set_size((image.shape[1], image.shape[0]))
                if self.padded:
                    w, h = self.size  # type: ignore[misc]
                    self._say(
                        f"{self._shown}: {w}x{h} written as {self.padded[0]}x{self.padded[1]} "
                        f"({self.codec} needs an even width and height; one edge row/column "
                        "repeated)"
                    )
            if (image.shape[1], image.shape[0]) != self.size:
                image = self._fit(image)
                self.resized += 1
            try:
                self._write_locked(image, frame)
            except (OSError, av.FFmpegError) as e:
                raise self._fail(e) from None

    def _fail(self, e: Exception) -> LiveheatError:
        """A write error: drop the unfinished file (never the target) and say it in one line."""
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        self.failed = f"cannot write {os.fspath(self._cur)}: {reason}"
        out, self._out, self._vst = self._out, None, None
        if self.audio is not None:
            self.audio.close()
            self.audio = None
        if out is not None:
            with contextlib.suppress(Exception):
                out.close()
        self._remove(self.tmp_path)
        return LiveheatError(self.failed)

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

    def _write_locked(self, image: np.ndarray, frame: Any) -> None:
        t, wall = self._times(frame)
        if self._out is not None and self.segment is not None and t - self._file_t0 >= self.segment:
            self._finish_file()
        if self._out is None:
            self._open_file(t, wall)
            self._file_t0 = t
        pts = self._pts(t, frame)
        if pts is None:  # grid: more than one slot early
            self.skipped += 1
            return
        if self.padded:
            w, h = self.size  # type: ignore[misc]
            image = cv2.copyMakeBorder(
                image, 0, self.padded[1] - h, 0, self.padded[0] - w, cv2.BORDER_REPLICATE
            )
        if self._mode == "grid":
            behind = pts - (self._last_pts + 1 if self._last_pts is not None else pts)
            for _ in range(behind):  # fill the time with the last image
                assert self._prev is not None
                self._encode(self._prev, self._last_pts + 1)  # type: ignore[operator]
                self.repeated += 1
            if self._prev is None:
                self._prev = np.empty_like(image)
            np.copyto(self._prev, image)
        self._encode(image, pts)
        if self.audio is not None:
            self.audio.feed(self._file_end_s(), self._out)

    def _pts(self, t: float, frame: Any) -> int | None:
        """The frame's pts in the current file's time base (None: leave it out)."""
        last = self._last_pts
        if self._mode == "source":
            if getattr(frame, "pts", None) is None or getattr(frame, "time_base", None) is None:
                pts = (last + round(1 / (self.fps * self._tb))) if last is not None else 0
            else:
                at = int(frame.pts) * Fraction(frame.time_base)
                if self._origin is None:
                    self._origin = at
                pts = round((at - self._origin) / self._tb)
        elif self._mode == "index":
            pts = self._file_frames
        elif self._mode == "clock":
            if self._origin is None:
                self._origin = t
            elif t - self._last_t > self.max_gap:  # a pause: restart the clock
                self._origin += t - self._last_t - 1 / self.fps
            pts = round((t - self._origin) / self._tb)
        else:  # grid
            if self._origin is None:
                self._origin = t
            slot = round((t - self._origin) * self.fps)
            if last is not None and abs(slot - last) > self.max_gap * self.fps:
                self._origin = t - (last + 1) / self.fps  # a long gap: a new clock
                slot = last + 1
            if last is not None and slot <= last - 1:
                return None
            pts = slot
        self._last_t = t
        if last is not None and pts <= last:
            pts = last + 1  # never two frames at one time
        return pts

    def _encode(self, image: np.ndarray, pts: int) -> None:
        import av

        vc = self.choice.codec
        h, w = image.shape[:2]
        if vc.pix_fmt == "yuv420p" and not (w % 2 or h % 2):
            # cv2's 4:2:0 averages the chroma (FFmpeg's default swscale path drops ~4 dB)
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), "yuv420p")
        else:
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
        vf.pts = pts
        vf.time_base = self._tb
        vf.duration = max(1, round(1 / (self.fps * self._tb)))
        if self.fragmented or self.segment is not None:
            t = float(pts * self._tb)
            if t - self._last_key_s >= FRAGMENT_S:  # each fragment starts with a keyframe
                vf.pict_type = av.video.frame.PictureType.I
                self._last_key_s = t
        out = self._out
        for p in self._vst.encode(vf):
            out.mux(p)
        self._last_pts = pts
        self._file_frames += 1
        self.frames_written += 1

    # ------------------------------------------------------------------ the end
    @staticmethod
    def _remove(path: Path) -> None:
        """Remove a temporary file (never the target: an old file there stays intact)."""
        with contextlib.suppress(OSError):
            if path.is_file():
                path.unlink()

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
            if self._out is None:
                return
            import av

            try:
                self._finish_file()
            except (OSError, av.FFmpegError) as e:
                raise self._fail(e) from None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<VideoSink '{self._shown}' {self.choice.describe()} {self.size} fps={self.fps:g} "
            f"frames={self.frames_written}>"
        )


@contextlib.contextmanager
def _quiet_libs():
    """Keep encoder libraries' banners (SVT-AV1, x265) off the terminal while probing."""
    from liveheat._common.system import quiet_stderr

    with quiet_stderr():
        yield


# ---------------------------------------------------------------------- left by a dead run
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or we cannot tell: leave its file alone
    return True


def _trim_fragments(path: Path) -> None:
    """Cut an MP4 killed mid-write after its last whole box (a half-written fragment header
    would keep the file from opening); leave it alone when its boxes make no sense."""
    size = path.stat().st_size
    ends, last_kind, i = [], b"", 0
    with open(path, "rb") as f:
        while i + 8 <= size:
            f.seek(i)
            head = f.read(16)
            n, kind = struct.unpack(">I4s", head[:8])
            if n == 1 and len(head) >= 16:
                n = struct.unpack(">Q", head[8:16])[0]
            if n < 8:
                return
            if i + n > size:
                break
            i += n
            ends.append((i, kind))
    if not ends:
        return
    cut, last_kind = ends[-1]
    if last_kind == b"moof" and len(ends) > 1:  # a fragment header without its media
        cut = ends[-2][0]
    if cut < size:
        os.truncate(path, cut)


def _playable(path: Path) -> tuple[int, float, str | None]:
    """(video frames, seconds, creation_time) of a file cut short; (0, 0, None) when no
    frame of it decodes."""
    import av

    try:
        with av.open(os.fspath(path)) as f:
            if not f.streams.video:
                return 0, 0.0, None
            vs = f.streams.video[0]
            created = f.metadata.get("creation_time")
            n, end, decoded = 0, 0.0, False
            try:
                for p in f.demux(vs):
                    if p.pts is None or not p.size:
                        continue
                    if not decoded:
                        decoded = bool(p.decode())
                    n += 1
                    end = max(end, float((p.pts + (p.duration or 0)) * vs.time_base))
            except av.FFmpegError:
                pass  # the cut: what came before it plays
            if not decoded and n:
                # the first packets may need the next ones (a decoder delay): try frames
                f.seek(0)
                with contextlib.suppress(av.FFmpegError, StopIteration):
                    decoded = next(f.decode(vs)) is not None
            return (n if decoded else 0), end, created
    except (av.FFmpegError, OSError):
        return 0, 0.0, None


def recover_temporaries(path: str | os.PathLike, say: Callable[[str], None] = _say) -> list[Path]:
    """Deal with the temporary files a VideoSink of a process that died left beside `path`
    (`.NAME.<pid>.tmp.EXT`, and its segments' `.NAME-<start>.<pid>.tmp.EXT`): a playable one
    (a live recording: fragmented MP4 or Matroska) is kept as `NAME.partial-<start time>.EXT`,
    an unplayable one removed; one line each. Files of a process still running are left alone.

    Returns:
        The partial recordings kept.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    base = target.name[: len(target.name) - len(target.suffix)]
    kept: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return kept
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None or m["ext"].lower() != target.suffix.lower():
            continue
        stem, pid = m["stem"], int(m["pid"])
        seg = None
        if stem != base:
            rest = stem[len(base) + 1 :] if stem.startswith(base + "-") else ""
            if not re.fullmatch(r"\d{8}-\d{6}(-\d+)?", rest):
                continue
            seg = rest[:15]
        if pid == os.getpid() or _alive(pid) or not entry.is_file():
            continue
        try:
            if target.suffix.lower() in (".mp4", ".m4v", ".mov"):
                _trim_fragments(entry)
            frames, seconds, created = _playable(entry)
            if frames == 0:
                entry.unlink()
                say(f"removed {entry} left by a run that ended (pid {pid}): it does not play")
                continue
            stamp = seg or _stamp_of(created, entry, seconds)
            dest = target.with_name(f"{base}.partial-{stamp}{target.suffix}")
            k = 2
            while dest.exists():
                dest = target.with_name(f"{base}.partial-{stamp}-{k}{target.suffix}")
                k += 1
            os.replace(entry, dest)
        except OSError as e:
            say(f"cannot recover {entry} left by a run that ended (pid {pid}): {e.strerror or e}")
            continue
        kept.append(dest)
        say(
            f"kept {dest}: {frames} frames ({seconds:.1f} s) of a recording that ended without "
            f"finishing (pid {pid})"
        )
    return kept


def _stamp_of(created: str | None, entry: Path, seconds: float) -> str:
    """The local start time of a recording, as YYYYmmdd-HHMMSS."""
    if created:
        with contextlib.suppress(ValueError):
            t = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.timezone.utc)
            return time.strftime(_STAMP, time.localtime(t.timestamp()))
    return time.strftime(_STAMP, time.localtime(entry.stat().st_mtime - seconds))
