"""A source's sound into a video file: `AudioTrack` writes it.

The reader says where the sound is (`Source.audio`, a `sources.AudioInfo`: the file and its
audio stream); the writer opens its own PyAV input on that file and reads only the audio
packets from it, so the video reader is not touched.

`AudioTrack` is made by `VideoSink` when it opens its file. The sound is copied unchanged
(stream copy) when the container takes its codec (`codecs.CONTAINERS[...].audio_copy`), else
decoded and re-encoded (AAC for MP4/MOV/MKV, Opus for WebM, MP3 for AVI). It starts at the
source time of the first video frame written and is cut at the end of the last one; packets
are handed to the muxer as the video advances (`feed`), so the file is interleaved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

from liveheat.outputs.codecs import Container, encoder_present
from liveheat.sources.base import AudioInfo

#: samples per frame the encoders take
_FRAME_SIZE = {"aac": 1024, "libopus": 960, "libmp3lame": 1152}


class AudioNotCarried(Exception):
    """The sound cannot go into this output; the message says why, in one line."""


class AudioTrack:
    """The sound of one output file (made by VideoSink, on the thread that writes it).

    Args:
        source: where the sound is.
        out: the output container (before its first packet: the stream is added here).
        container: the output's row of the codec table.
        start_s: the source time of the first video frame written; the sound starts there.
        notice: says one line (a sound that stops early).

    Raises:
        AudioNotCarried: the output cannot take this sound (the caller says so, once).
    """

    def __init__(
        self,
        source: AudioInfo,
        out: Any,
        container: Container,
        *,
        start_s: float,
        notice: Callable[[str], None],
    ) -> None:
        import av

        self.source = source
        self._notice = notice
        self.start_s = float(start_s)
        self.packets = 0  # packets muxed
        self.end_s = 0.0  # output time the sound reaches
        self._pending: Any = None
        self._done = False
        try:
            self._in = av.open(source.path)
            self._ist = self._in.streams[source.stream_index]
        except Exception as e:  # noqa: BLE001 - the file changed or went away
            raise AudioNotCarried(f"cannot read the sound of {source.path!r}: {e}") from None
        if self._ist.type != "audio":
            self._in.close()
            raise AudioNotCarried(f"stream {source.stream_index} of {source.path!r} is no sound")
        name = self._ist.codec_context.codec.canonical_name
        self.codec = name
        self.copy = name in container.audio_copy
        self._tb = self._ist.time_base or Fraction(1, self._ist.codec_context.sample_rate or 1)
        self._start_pts = round(self.start_s / self._tb)
        self.encoder: str | None = None
        if self.copy:
            self._ost = out.add_stream_from_template(self._ist)
        else:
            enc = container.audio_encoder
            if enc is None or not encoder_present(enc):
                self._in.close()
                raise AudioNotCarried(
                    f"{container.ext} cannot hold the source's {name} sound and this FFmpeg "
                    f"has no encoder for it; write .mp4 or .mkv to keep the sound"
                )
            self._open_encoder(out, enc)
        self.what = f"{name} copied" if self.copy else f"{name} re-encoded to {self.encoder}"
        self._packets: Iterator[Any] = self._in.demux(self._ist)

    # -- re-encoding
    def _open_encoder(self, out: Any, enc: str) -> None:
        import av

        icc = self._ist.codec_context
        codec = av.codec.Codec(enc, "w")
        rates = codec.audio_rates or ()
        rate = icc.sample_rate or 48000
        if rates and rate not in rates:
            rate = 48000 if 48000 in rates else max(rates)
        channels = icc.channels or 2
        layout = icc.layout.name if channels <= 2 or enc == "aac" else "stereo"
        fmt = codec.audio_formats[0].name if codec.audio_formats else "fltp"
        self.encoder = enc
        self._ost = out.add_stream(enc, rate=rate)
        self._ost.layout = layout
        self._ost.format = fmt
        self._ost.time_base = Fraction(1, rate)
        self._rate = rate
        self._resampler = av.AudioResampler(
            format=fmt, layout=layout, rate=rate, frame_size=_FRAME_SIZE.get(enc)
        )
        self._samples = 0  # samples encoded: the next frame's pts

    def _encode(self, frame: Any, out: Any) -> None:
        frames = self._resampler.resample(frame)
        for f in frames:
            f.pts = self._samples
            f.time_base = Fraction(1, self._rate)
            self._samples += f.samples
        self._mux_encoded(out, frames)
        self.end_s = self._samples / self._rate

    def _mux_encoded(self, out: Any, frames: list[Any] | None) -> None:
        """Encode and mux; the encoder's priming (packets before 0) is dropped or starts at
        0, so the muxer does not shift the video to make room for it."""
        for f in [None] if frames is None else frames:
            for p in self._ost.encode(f):
                if p.pts is not None and p.pts < 0:
                    if p.pts + (p.duration or 0) <= 0:
                        continue
                    p.pts = p.dts = 0
                out.mux(p)
                self.packets += 1

    # -- both
    def _next(self) -> Any:
        """The next packet of the source's sound (None at its end or when it is unreadable)."""
        if self._pending is not None:
            p, self._pending = self._pending, None
            return p
        while True:
            try:
                p = next(self._packets)
            except StopIteration:
                return None
            except Exception as e:  # noqa: BLE001 - a damaged file: the video goes on
                self._notice(
                    f"the sound stops at {self.end_s:.1f} s: the source's is damaged ({e})"
                )
                return None
            if p.pts is not None and p.size:
                return p

    def feed(self, until_s: float, out: Any) -> None:
        """Mux the sound up to output time `until_s` (the end of the last video frame):
        every packet centred before it. Write errors (OSError) go to the caller."""
        if self._done:
            return
        import av

        while True:
            p = self._next()
            if p is None:
                self._done = True
                return
            dur = p.duration or 0
            t = float((p.pts - self._start_pts) * self._tb)
            if p.pts < self._start_pts:
                continue  # before the first video frame (and the encoder's priming)
            if t + float(dur * self._tb) / 2 > until_s:
                self._pending = p
                return
            if self.copy:
                p.pts -= self._start_pts
                if p.dts is not None:
                    p.dts -= self._start_pts
                p.stream = self._ost
                out.mux(p)
                self.packets += 1
                self.end_s = float((p.pts + dur) * self._tb)
            else:
                try:
                    frames = p.decode()
                except av.FFmpegError:
                    continue  # one damaged packet: a gap in the sound, not its end
                for f in frames:
                    self._encode(f, out)

    def finish(self, end_s: float, out: Any) -> None:
        """Mux the sound up to `end_s`, flush the encoder and close the input."""
        try:
            self.feed(end_s, out)
            self._done = True
            if not self.copy:
                self._encode(None, out)  # what the resampler still holds
                self._mux_encoded(out, None)  # and the encoder
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._in.close()
        except Exception:  # noqa: BLE001 - closing a reader
            pass
