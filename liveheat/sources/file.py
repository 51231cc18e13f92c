"""A video file reader on PyAV (FFmpeg): every frame with its own presentation time.

Cameras and stream URLs stay on OpenCV (`capture.py`); files decode here, with FFmpeg's
threaded decoding and one reused colour converter (uint8 BGR straight out of swscale, no extra
copy). Each frame keeps the stream's own pts and time base, so a variable-frame-rate file keeps
its timing and 29.97 stays 30000/1001. A damaged packet in the middle of a file is left out and
counted (`skipped_frames`) when the decoder recovers after it; a file that cannot be read past
some point ends the source with `.error` set, as a truncated one does.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from liveheat.errors import LiveheatError
from liveheat.sources.base import AudioInfo, Frame, _Reader, exact_fps, log

#: packets in a row that give no frame, with a decoder error among them, before a file counts
#: as undecodable from there on (10 s at 25 fps; frame threads hold back fewer than 20, and a
#: damaged key frame takes the rest of its group of pictures with it)
MAX_BAD_RUN = 250
#: demuxer errors in a row (no packet between them) before a file counts as unreadable
MAX_DEMUX_ERRORS = 8
#: with no exact frame count to compare, a file whose frames end this much short of its
#: stated duration ended early
EARLY_END_S = 0.5
_ATTACHED_PIC = 0x400  # AV_DISPOSITION_ATTACHED_PIC: cover art, not the video


def _reason(e: BaseException) -> str:
    """FFmpeg's own words for an error, without PyAV's errno and call name."""
    return str(getattr(e, "strerror", None) or e).strip() or type(e).__name__


def _open_container(path: str) -> Any:
    import av

    try:
        return av.open(path, "r", metadata_errors="replace")
    except PermissionError:
        raise LiveheatError(
            f"cannot open video file '{path}': permission denied; check who may read it"
        ) from None
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise LiveheatError(
            f"cannot open video file '{path}': FFmpeg cannot read it ({_reason(e)}; not a "
            "video, an unsupported format, or cut short so its index is missing); check that "
            "it plays elsewhere, or re-encode it"
        ) from None


def _video_stream(container: Any, path: str) -> Any:
    streams = [s for s in container.streams.video if not s.disposition & _ATTACHED_PIC]
    if not streams:
        container.close()
        raise LiveheatError(
            f"cannot open video file '{path}': it has no video stream (a sound or data file?); "
            "give a video file"
        )
    try:
        best = container.streams.best("video")
    except Exception:  # noqa: BLE001 - no best guess: the first one
        best = None
    stream = best if best in streams else streams[0]
    stream.thread_type = "AUTO"  # frame and slice threads: FFmpeg's fastest decoding
    return stream


def _rate(stream: Any) -> Fraction | None:
    """The stream's average frame rate as FFmpeg gives it (a Fraction), else its guess."""
    for rate in (stream.average_rate, getattr(stream, "guessed_rate", None), stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def _frame_count(container: Any, stream: Any, rate: Fraction | None) -> tuple[int | None, bool]:
    """(frames, exact): the stream's own count, else duration x rate (an estimate), else None."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames), True
    if rate is None:
        return None, False
    if stream.duration and stream.time_base:
        seconds = stream.duration * stream.time_base
    elif container.duration:
        seconds = Fraction(container.duration, 1_000_000)
    else:
        return None, False
    n = round(seconds * rate)
    return (int(n), False) if 0 < n < 2**40 else (None, False)


def _audio(container: Any, path: str, video_start_s: float) -> AudioInfo | None:
    """The file's main audio stream, or None."""
    if not container.streams.audio:
        return None
    try:
        stream = container.streams.best("audio") or container.streams.audio[0]
    except Exception:  # noqa: BLE001
        stream = container.streams.audio[0]
    cc, tb = stream.codec_context, stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    layout = getattr(getattr(cc, "layout", None), "name", "") if cc is not None else ""
    return AudioInfo(
        path=os.path.abspath(path),
        stream_index=int(stream.index),
        codec=(cc.name if cc is not None else "") or "",
        sample_rate=int(getattr(cc, "sample_rate", 0) or 0),
        channels=int(getattr(cc, "channels", 0) or 0),
        start_time_s=start,
        video_start_s=video_start_s,
        layout=layout or "",
    )


class _Decoder:
    """One decoding pass over a file's video stream: the decoded frames in presentation order.

    A packet the decoder refuses, or never gives a frame for, and a frame it decoded with
    errors (concealed, flagged corrupt) are damaged frames: counted in
    `skipped` (running: by pts, as later frames pass it; at the end, exactly: the packets sent
    less the frames given) and left out. `fail(why)` is called, and the frames end, when the
    file cannot be read or decoded past some point.
    """

    def __init__(self, container: Any, stream: Any, fail: Callable[[str], None]) -> None:
        self._container, self._stream, self._fail = container, stream, fail
        self._skipped = 0  # running, then exact (see `skipped`)
        self._trailing = 0  # damaged frames at the end, with no good frame after them
        self.errors = 0  # decoder errors and frames decoded with errors
        self.given = 0  # frames handed out (the caller's count, for messages)
        self._pending: list[int] = []  # pts of the packets sent, not yet seen as frames
        self._sent = self._out = 0  # packets with data sent; good frames the decoder gave
        self._skipped_at_good = 0  # the running count at the last good frame
        self._bad_run = self._damaged_in_run = 0  # packets, damage since the last good frame
        self._why = ""  # the last damage, in FFmpeg's words

    def frames(self) -> Iterator[Any]:
        import av

        packets = self._container.demux(self._stream)
        demux_errors = 0
        while True:
            try:
                packet = next(packets)
            except (StopIteration, av.error.EOFError):
                break
            except (av.error.FFmpegError, OSError) as e:
                demux_errors += 1
                if isinstance(e, MemoryError) or demux_errors >= MAX_DEMUX_ERRORS:
                    return self._stop(f"cannot be read past frame {self.given}: {_reason(e)}")
                packets = self._container.demux(self._stream)  # resumes after the bad part
                continue
            demux_errors = 0
            frames = self._send(packet)
            if frames is None:
                return None
            for frame in frames:
                if frame.is_corrupt:  # decoded with errors (concealed): damaged too
                    self._seen(frame, good=False)
                    self._damage("a frame decoded with errors")
                    continue
                self._seen(frame)
                yield frame
            if self._bad_run >= MAX_BAD_RUN and self._damaged_in_run:
                return self._stop(
                    f"cannot be decoded past frame {self.given}: {self._bad_run} packets in a "
                    f"row gave no good frame ({self._why})"
                )
        self._settle()

    def _settle(self) -> None:
        """At the end (decoder flushed): every packet it gave no good frame for was damaged
        (this corrects the running count, which matched pts); those after the last good
        frame were never recovered from."""
        self._skipped = max(0, self._sent - self._out)
        self._trailing = max(0, self._skipped - self._skipped_at_good)
        self._pending.clear()

    def _stop(self, why: str) -> None:
        """Decoding cannot go on: what was sent and never came back counts as damaged."""
        self._settle()
        self._fail(why)

    def _send(self, packet: Any) -> list[Any] | None:
        """The frames the decoder gives for one packet ([] for a damaged one), None when
        decoding cannot go on."""
        import av

        if packet.size:
            self._sent += 1
            self._bad_run += 1  # until a good frame comes
            if packet.pts is not None:
                heapq.heappush(self._pending, packet.pts)
        try:
            return packet.decode()
        except av.error.EOFError:
            return []
        except av.error.FFmpegError as e:  # a damaged packet (with frame threads, maybe
            if isinstance(e, MemoryError):  # an earlier one's error surfacing now)
                self._stop(f"cannot be decoded past frame {self.given}: {_reason(e)}")
                return None
            log.debug("decoder error after frame %d: %s", self.given, e)
            self._damage(_reason(e))
            return []

    def _damage(self, why: str) -> None:
        self.errors += 1
        self._damaged_in_run += 1
        self._why = why

    @property
    def skipped(self) -> int:
        """Damaged frames left out. Only once the decoder has said something was wrong (an
        error, a frame flagged corrupt): a packet that rightly gives no picture (a hidden frame
        some encoders store on its own) is no damage."""
        return self._skipped if self.errors else 0

    @property
    def trailing(self) -> int:
        return self._trailing if self.errors else 0

    def _seen(self, frame: Any, good: bool = True) -> None:
        """A decoded frame: packets whose pts it passed without a frame of theirs were damaged
        (decoders give frames in presentation order); a damaged frame counts itself."""
        pending, pts = self._pending, frame.pts
        if pts is not None:
            while pending and pending[0] < pts:
                heapq.heappop(pending)
                self._skipped += 1
            if pending and pending[0] == pts:
                heapq.heappop(pending)
        if good:
            self._out += 1
            self._skipped_at_good = self._skipped
            self._bad_run = self._damaged_in_run = 0
        else:
            self._skipped += 1


class _VideoFileReader(_Reader):
    kind = "file"
    seekable = True

    def __init__(self, path: str, fps: float | None) -> None:
        from av.video.reformatter import VideoReformatter

        self.path = path
        self.name = os.path.basename(path) or path
        self._fps_override = exact_fps(fps)
        self._container: Any = None
        self._convert = VideoReformatter()  # one swscale context for the whole file
        self._loop_pts = 0  # added to every pts after a rewind (a loop keeps counting)
        self._skipped_before = 0  # damaged frames of earlier passes (loops)
        self.pts: int | None = None  # of the frame read last: its stream's own value
        self._last: Any = None
        self._open()
        stream, first = self._stream, self._first
        self.time_base = stream.time_base or Fraction(1, 90000)
        start, first_pts = stream.start_time, self._pts(first)
        # the stream's start on its own clock (a first frame before it would read negative)
        self._start_pts = start if start is not None and start <= first_pts else first_pts
        self.rate = rate = _rate(stream)  # the average rate as FFmpeg gives it: 30000/1001
        self.fps = exact_fps(fps) or (exact_fps(float(rate)) if rate else None)
        self.frame_count, self._count_exact = _frame_count(self._container, stream, rate)
        self._duration_s = float(stream.duration * self.time_base) if stream.duration else None
        # a frame's length when FFmpeg gives none (the last one's, for a loop's length)
        self._step = max(1, round(1 / (rate * self.time_base))) if rate else 1
        h, w = self._first_image.shape[:2]
        self.size = (int(w), int(h))
        self.audio = _audio(self._container, path, float(first_pts * self.time_base))

    @property
    def skipped_frames(self) -> int:  # type: ignore[override]
        return self._skipped_before + self._decoder.skipped

    # -- opening and rewinding
    def _open(self) -> None:
        self._container = _open_container(self.path)
        self._stream = _video_stream(self._container, self.path)
        self._start_pass()
        first = next(self._frames, None)
        if first is None:
            self._close_container()
            why = f"; {self.error}" if self.error else ""
            raise LiveheatError(
                f"video file '{self.path}' has no readable frames: none could be decoded "
                f"(empty or corrupt{why}); check that it plays elsewhere, or re-encode it"
            )
        self.error = None
        self._first = first
        # the display matrix turns the picture counterclockwise by 90 * k degrees (phones)
        self._rotate = round((getattr(first, "rotation", 0) or 0) / 90) % 4
        self._decoded_size = (first.width, first.height)  # every frame is converted to it
        try:
            self._first_image = self._image(first)
        except Exception as e:  # noqa: BLE001 - a pixel format swscale cannot convert
            self._close_container()
            raise LiveheatError(
                f"cannot read video file '{self.path}': its {first.format.name} frames cannot "
                f"be converted to BGR ({_reason(e)}); re-encode it"
            ) from None

    def _start_pass(self) -> None:
        self._decoder = _Decoder(self._container, self._stream, self._fail)
        self._frames: Iterator[Any] = self._decoder.frames()

    def rewind(self) -> None:
        if self._last is not None and self.pts is not None:
            end = self.pts + (getattr(self._last, "duration", None) or self._step)
            self._loop_pts += end - self._start_pts
        self._skipped_before = self.skipped_frames
        try:
            self._container.seek(0)  # (PyAV flushes the decoder)
        except Exception as e:  # noqa: BLE001 - not seekable: open it again
            log.debug("seek to the start of %s failed (%s); reopening it", self.path, e)
            self._close_container()
            self._container = _open_container(self.path)
            self._stream = _video_stream(self._container, self.path)
        self._start_pass()
        self._first, self._last, self.pts = None, None, None

    def _fail(self, why: str) -> None:
        self.error = f"video '{self.name}' {why} (file damaged)"
        log.debug("%s", self.error)

    # -- decoding
    def _pts(self, frame: Any) -> int:
        """A frame's pts on its stream's clock (the next after the last one when it has none)."""
        if frame.pts is not None:
            return int(frame.pts)
        if frame.dts is not None:
            return int(frame.dts)
        if self.pts is not None and self._last is not None:
            return self.pts + (getattr(self._last, "duration", None) or self._step)
        return int(getattr(self, "_start_pts", 0))

    def _image(self, frame: Any) -> np.ndarray:
        """uint8 BGR H x W x 3 straight from swscale (one conversion into a new buffer, no
        copy after it); a frame of another size than the first is scaled to it; a rotated
        video is turned upright."""
        w, h = self._decoded_size
        image = self._convert.reformat(frame, w, h, "bgr24", threads=1).to_ndarray()
        if self._rotate:
            image = np.ascontiguousarray(np.rot90(image, self._rotate))
        return image

    # -- reading
    def read(self) -> np.ndarray | None:
        if self._container is None:
            return None
        if self._first is not None:
            frame, image, self._first = self._first, self._first_image, None
            self._first_image = None
        else:
            frame = next(self._frames, None)
            if frame is None:
                self._ended()
                return None
            try:
                image = self._image(frame)
            except Exception as e:  # noqa: BLE001 - a frame swscale cannot convert
                self._fail(f"cannot be converted past frame {self._decoder.given}: {_reason(e)}")
                return None
        self.pts = self._pts(frame)
        self._last = frame
        self._decoder.given += 1
        return image

    def _ended(self) -> None:
        """At the end of a pass: `.error` when it came before the file's end."""
        if self.error is not None or self._last is None:
            return
        dec = self._decoder
        n, total, skipped = dec.given, self.frame_count, dec.skipped
        if self._count_exact and total is not None and n + skipped < total:
            self.error = (
                f"video '{self.name}' ended early: read {n} of {total} frames "
                "(file truncated or corrupt)"
            )
        elif dec.trailing:  # damage the decoder never recovered from
            of = f" of {total}" if self._count_exact else ""
            self.error = (
                f"video '{self.name}' ended early: read {n}{of} frames, the last "
                f"{dec.trailing} could not be decoded (file truncated or corrupt)"
            )
        elif not self._count_exact and self._duration_s and self.pts is not None:
            end = self.pts + (getattr(self._last, "duration", None) or self._step) - self._start_pts
            end_s = float(end * self.time_base)
            if end_s < self._duration_s - max(EARLY_END_S, 2 / (self.fps or 25)):
                self.error = (
                    f"video '{self.name}' ended early: read {n} frames, {end_s:.1f} s of "
                    f"{self._duration_s:.1f} s (file truncated or corrupt)"
                )

    def frame(self, image: np.ndarray, index: int, fps: float | None) -> Frame:
        if self._fps_override:  # the file's own times overruled: one frame every 1/fps s
            return Frame(image, index, index / self._fps_override, fps)
        tb = self.time_base
        assert tb is not None and self.pts is not None
        pts = self.pts + self._loop_pts
        t = ((pts - self._start_pts) * tb.numerator) / tb.denominator  # exactly rounded
        return Frame(image, index, t, fps, pts, tb)

    def position_s(self) -> float:
        if self.pts is None or self.time_base is None:
            return 0.0
        return float((self.pts + self._loop_pts - self._start_pts) * self.time_base)

    def _close_container(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # noqa: BLE001 - closing a reader
                pass

    def close(self) -> None:
        self._frames = iter(())
        self._close_container()
