"""One video file being encoded through PyAV (EncodedFile), and the encoder check made first.

`VideoSink` (`outputs/video.py`) decides what is written where and when a file ends; an
`EncodedFile` owns one file's container, its video stream and sound, and the presentation
time of each frame in it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from liveheat.errors import LiveheatError
from liveheat.outputs.audio import AudioNotCarried, AudioTrack
from liveheat.outputs.codecs import FRAGMENT_S, Choice
from liveheat.sources.base import AudioInfo

_CLOCK_TB = {"mp4": Fraction(1, 90000), "mov": Fraction(1, 90000)}  # live: a fine time base
_MS = Fraction(1, 1000)  # Matroska / WebM count milliseconds


@contextlib.contextmanager
def _quiet_libs():
    """Keep encoder libraries' banners (SVT-AV1, x265) off the terminal while probing."""
    from liveheat._common.system import quiet_stderr

    with quiet_stderr():
        yield


def probe_encoder(
    choice: Choice, size: tuple[int, int], rate: Fraction, live: bool, shown: str
) -> None:
    """Open the encoder once now, so that a preset it refuses fails before any frame."""
    import av

    try:
        cc = av.CodecContext.create(choice.encoder, "w")
        cc.width, cc.height = size
        cc.pix_fmt = choice.codec.pix_fmt
        cc.time_base = 1 / rate
        cc.framerate = rate
        cc.options = choice.options(live=live)
        with _quiet_libs():
            cc.open()
        del cc  # freed (closed) with its last reference
    except av.FFmpegError as e:
        raise LiveheatError(
            f"cannot write video '{shown}': the {choice.encoder} encoder refused "
            f"{choice.describe()} ({e.strerror or e}); try another --encoder-preset "
            "or --codec"
        ) from None


def open_audio(
    src: AudioInfo,
    out: Any,
    container: Any,
    start_s: float,
    say: Callable[[str], None],
    shown: str,
) -> tuple[AudioTrack | None, str]:
    """The sound track of `src` on the container `out`, and how it is written or why not."""
    try:
        audio = AudioTrack(src, out, container, start_s=start_s, notice=say)
        return audio, f"sound: {audio.what}"
    except AudioNotCarried as e:
        say(f"{shown}: no sound: {e}")
        return None, f"no sound: {e}"


def remove_temporary(path: Path) -> None:
    """Remove a temporary file (never the target: an old file there stays intact)."""
    with contextlib.suppress(OSError):
        if path.is_file():
            path.unlink()


class Tally(Protocol):
    """Where an EncodedFile counts what it wrote (the VideoSink: over all its files)."""

    frames_written: int
    repeated: int
    skipped: int


class EncodedFile:
    """One output file, open at `tmp` until `finish()`: the PyAV container, the video stream,
    the sound (`audio`, made by `add_audio(container, start_s)`) and each frame's pts.

    `mode` is how frames are timed: "source" (their `Frame` pts, in `src_tb`), "index" (one
    after the other), "clock" (capture time, variable rate) or "grid" (capture time on a fixed
    grid: AVI). `keyed`: a keyframe each `codecs.FRAGMENT_S` second (fragments, segments).
    `pad`: the (right, bottom) edge pixels repeated to make the size even. Frames written,
    repeated and left out are counted in `tally`.
    """

    def __init__(
        self,
        tmp: Path,
        choice: Choice,
        *,
        rate: Fraction,
        fps: float,
        size: tuple[int, int],
        pad: tuple[int, int] | None,
        mode: str,
        src_tb: Fraction | None,
        live: bool,
        fragmented: bool,
        keyed: bool,
        max_gap: float,
        start_s: float,
        wall: float,
        add_audio: Callable[[Any, float], AudioTrack | None],
        tally: Tally,
    ) -> None:
        import av

        self.tmp = tmp
        self.start_s = start_s
        self.pad = pad
        self.tally = tally
        self.fps = fps
        self.mode = mode
        self.max_gap = max_gap
        self.keyed = keyed
        self._yuv = choice.codec.pix_fmt == "yuv420p"
        cont = choice.container
        opts: dict[str, str] = {}
        if fragmented:
            opts["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
            opts["frag_duration"] = str(int(FRAGMENT_S * 2_000_000))  # a backstop: 2 s
            opts["flush_packets"] = "1"
        elif cont.faststart:
            opts["movflags"] = "+faststart"
        out = av.open(os.fspath(tmp), "w", format=cont.format, options=opts)
        try:
            stamp = _dt.datetime.fromtimestamp(wall, _dt.timezone.utc)
            out.metadata["creation_time"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            vc = choice.codec
            if mode == "source":
                # Matroska counts milliseconds: rounded here, so two frames never share one
                tb = _MS if cont.format in ("matroska", "webm") else src_tb
            elif mode == "clock":
                tb = _CLOCK_TB.get(cont.format, _MS)
            else:
                tb = 1 / rate
            self.tb = tb
            vst = out.add_stream(choice.encoder, rate=rate, options=choice.options(live=live))
            w, h = size
            vst.width, vst.height, vst.pix_fmt = w, h, vc.pix_fmt
            vst.time_base = tb
            cc = vst.codec_context
            cc.time_base = tb
            cc.framerate = rate
            # BT.601, as cv2's I420 conversion (and MJPEG's full range) makes it
            cc.colorspace = 6  # SMPTE 170M
            cc.color_primaries = 6
            cc.color_trc = 6
            cc.color_range = 2 if vc.pix_fmt.startswith("yuvj") else 1
            if keyed:
                cc.gop_size = max(1, round(2 * FRAGMENT_S * fps))
            if vc.name == "hevc" and cont.format in ("mp4", "mov"):
                vst.codec_tag = "hvc1"  # what Apple players want
            self.audio: AudioTrack | None = None
            self.audio = add_audio(out, start_s)
        except BaseException:
            with contextlib.suppress(Exception):
                out.close()
            remove_temporary(tmp)
            raise
        self.out, self._vst = out, vst
        self.frames = 0
        self.last_pts: int | None = None
        self._last_key_s = -1e9
        self._last_t = 0.0
        self._origin: Any = None  # the first frame's time: pts, clock seconds or slot
        self._prev: np.ndarray | None = None  # grid: the last image, to fill time with

    def put(self, image: np.ndarray, t: float, frame: Any) -> None:
        """Write one image, `t` seconds into the recording: timed, padded, time filled on a
        grid, the sound fed up to its end."""
        tally = self.tally
        pts = self.pts(t, frame)
        if pts is None:  # grid: more than one slot early
            tally.skipped += 1
            return
        if self.pad:
            image = cv2.copyMakeBorder(image, 0, self.pad[1], 0, self.pad[0], cv2.BORDER_REPLICATE)
        if self.mode == "grid":
            behind = pts - (self.last_pts + 1 if self.last_pts is not None else pts)
            for _ in range(behind):  # fill the time with the last image
                assert self._prev is not None
                self.encode(self._prev, self.last_pts + 1)  # type: ignore[operator]
                tally.frames_written += 1
                tally.repeated += 1
            if self._prev is None:
                self._prev = np.empty_like(image)
            np.copyto(self._prev, image)
        self.encode(image, pts)
        tally.frames_written += 1
        if self.audio is not None:
            self.audio.feed(self.end_s(), self.out)

    def pts(self, t: float, frame: Any) -> int | None:
        """The frame's pts in this file's time base (None: leave it out)."""
        last = self.last_pts
        if self.mode == "source":
            if getattr(frame, "pts", None) is None or getattr(frame, "time_base", None) is None:
                pts = (last + round(1 / (self.fps * self.tb))) if last is not None else 0
            else:
                at = int(frame.pts) * Fraction(frame.time_base)
                if self._origin is None:
                    self._origin = at
                pts = round((at - self._origin) / self.tb)
        elif self.mode == "index":
            pts = self.frames
        elif self.mode == "clock":
            if self._origin is None:
                self._origin = t
            elif t - self._last_t > self.max_gap:  # a pause: restart the clock
                self._origin += t - self._last_t - 1 / self.fps
            pts = round((t - self._origin) / self.tb)
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

    def encode(self, image: np.ndarray, pts: int) -> None:
        """Encode one BGR image (of the stream's size) at `pts` and mux what comes out."""
        import av

        h, w = image.shape[:2]
        if self._yuv and not (w % 2 or h % 2):
            # cv2's 4:2:0 averages the chroma (FFmpeg's default swscale path drops ~4 dB)
            vf = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420), "yuv420p")
        else:
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
        vf.pts = pts
        vf.time_base = self.tb
        vf.duration = max(1, round(1 / (self.fps * self.tb)))
        if self.keyed:
            t = float(pts * self.tb)
            if t - self._last_key_s >= FRAGMENT_S:  # each fragment starts with a keyframe
                vf.pict_type = av.video.frame.PictureType.I
                self._last_key_s = t
        out = self.out
        for p in self._vst.encode(vf):
            out.mux(p)
        self.last_pts = pts
        self.frames += 1

    def end_s(self) -> float:
        """The output time where this file's last video frame ends."""
        if self.last_pts is None:
            return 0.0
        return float(self.last_pts * self.tb) + 1 / self.fps

    def finish(self, dest: Path) -> None:
        """Flush the encoder and the sound, write the index, move the file onto `dest`."""
        out = self.out
        try:
            for p in self._vst.encode(None):
                out.mux(p)
            if self.audio is not None:
                self.audio.finish(self.end_s(), out)
        finally:
            audio, self.audio = self.audio, None
            if audio is not None:
                audio.close()
            out.close()  # faststart: the index is moved to the front here
        os.replace(self.tmp, dest)

    def abort(self) -> None:
        """After a write error: close what is open, quietly (the caller removes the file)."""
        if self.audio is not None:
            self.audio.close()
            self.audio = None
        with contextlib.suppress(Exception):
            self.out.close()
