"""The one codec table: what each output extension holds, which encoder writes it, and how.

`VideoSink`, `liveheat doctor` and the README read this table; nothing else names an
encoder. The defaults were chosen from `scripts/bench_codecs.py` (the bundled 720p clip drawn
with a heatmap, 2 cores; the table is in the README): H.264 through libx264 `superfast`,
CRF 23, PSNR tuning, the macroblock tree over 10 frames, chroma given 3 QP more than luma (a
heatmap is colour), and three of veryfast's tools that pay most for their cost here (sub-pixel
refinement 2, trellis quantisation, two reference frames) is 0.33x the size of OpenCV's mp4v
at +0.1 dB PSNR for ~20 ms of CPU a 720p frame (veryfast itself: 0.35x at -0.3 dB, 23 ms;
faster reaches 0.32x at mp4v's PSNR only for 39 ms).

PyAV's wheels carry libx264 and libx265, which are GPL: see the README ("Video files").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from liveheat.errors import LiveheatError
from liveheat.settings.fields import VIDEO_CODECS as _NAMES

# ---------------------------------------------------------------------------------- video codecs

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)


@dataclass(frozen=True)
class VideoCodec:
    """One video codec as `--codec` names it.

    Attributes:
        name: the `--codec` word (h264, hevc, vp9, av1, mjpeg, mpeg4).
        encoders: FFmpeg encoders that write it, the first present is used.
        pix_fmt: the pixel format written (4:2:0 everywhere: what every player decodes).
        crf: the default quality (`--crf`; lower is better and larger); for mjpeg and mpeg4
            it is their quantiser (`q:v`, 2..31).
        crf_range: the values `--crf` may take.
        preset: the default `--encoder-preset`, or None when the encoder has none.
        presets: the presets it takes (the word is passed on as the encoder spells it).
        odd_sizes: the encoder keeps an odd width or height (else the frame is padded).
        fourcc: the four-character code a container may show for it.
        browsers: plays in current Chromium, Firefox and Safari (in MP4 or WebM).
    """

    name: str
    encoders: tuple[str, ...]
    pix_fmt: str
    crf: int
    crf_range: tuple[int, int]
    preset: str | None
    presets: tuple[str, ...]
    odd_sizes: bool
    fourcc: str
    browsers: bool
    options: dict[str, str] = field(default_factory=dict)


VIDEO_CODECS: dict[str, VideoCodec] = {
    c.name: c
    for c in (
        VideoCodec(
            "h264", ("libx264",), "yuv420p", 23, (0, 51), "superfast", X264_PRESETS,
            odd_sizes=False, fourcc="avc1", browsers=True,
        ),
        VideoCodec(
            "hevc", ("libx265",), "yuv420p", 26, (0, 51), "ultrafast", X264_PRESETS,
            odd_sizes=False, fourcc="hvc1", browsers=False,
            options={"x265-params": "log-level=error"},
        ),
        VideoCodec(
            # VP9's preset is libvpx's cpu-used: 8 is its fastest realtime speed
            "vp9", ("libvpx-vp9",), "yuv420p", 31, (0, 63), "8", tuple(map(str, range(9))),
            odd_sizes=True, fourcc="vp09", browsers=True,
            options={"deadline": "realtime", "row-mt": "1", "b": "0"},
        ),
        VideoCodec(
            # SVT-AV1's preset: 0 (slowest) .. 13 (fastest); libaom's cpu-used 0..8 likewise
            "av1", ("libsvtav1", "libaom-av1"), "yuv420p", 32, (0, 63), "12",
            tuple(map(str, range(14))), odd_sizes=True, fourcc="av01", browsers=True,
        ),
        VideoCodec(
            "mjpeg", ("mjpeg",), "yuvj420p", 3, (2, 31), None, (), odd_sizes=True,
            fourcc="MJPG", browsers=False,
        ),
        VideoCodec(
            "mpeg4", ("mpeg4",), "yuv420p", 3, (2, 31), None, (), odd_sizes=True,
            fourcc="mp4v", browsers=False,
        ),
    )
}  # fmt: skip
CODEC_NAMES = tuple(VIDEO_CODECS)
assert CODEC_NAMES == _NAMES, "settings.fields.VIDEO_CODECS names the codecs of this table"

#: the old `fourcc=` argument of VideoSink, as a codec name
FOURCC_CODECS = {
    "avc1": "h264", "h264": "h264", "x264": "h264", "hvc1": "hevc", "hev1": "hevc",
    "vp09": "vp9", "vp90": "vp9", "av01": "av1", "mjpg": "mjpeg", "mp4v": "mpeg4",
    "xvid": "mpeg4", "fmp4": "mpeg4",
}  # fmt: skip

# ---------------------------------------------------------------------------------- containers


@dataclass(frozen=True)
class Container:
    """One output extension.

    Attributes:
        ext: the extension, lower case with the dot.
        format: FFmpeg's muxer name.
        default: the codec written when `--codec` is not given.
        codecs: the codecs it may hold.
        audio_copy: source audio codecs it takes unchanged (stream copy).
        audio_encoder: what any other sound is re-encoded to (None: the sound is left out,
            with a line saying so).
        faststart: the index goes first once the file is complete (plays while it downloads).
        fragmented: live recordings are written as fragmented MP4 (playable when cut off).
        variable_rate: frames may come at any times (else they are placed on a fixed grid).
    """

    ext: str
    format: str
    default: str
    codecs: tuple[str, ...]
    audio_copy: tuple[str, ...]
    audio_encoder: str | None
    faststart: bool = False
    fragmented: bool = False
    variable_rate: bool = True


_MP4_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac")
_MKV_AUDIO = (
    "aac", "mp3", "opus", "vorbis", "flac", "ac3", "eac3", "alac", "pcm_s16le", "pcm_s24le",
    "pcm_f32le", "mp2", "dts", "truehd",
)  # fmt: skip
CONTAINERS: dict[str, Container] = {
    c.ext: c
    for c in (
        Container(".mp4", "mp4", "h264", ("h264", "hevc", "av1", "vp9", "mpeg4", "mjpeg"),
                  _MP4_AUDIO, "aac", faststart=True, fragmented=True),
        Container(".m4v", "mp4", "h264", ("h264", "hevc", "av1", "vp9", "mpeg4", "mjpeg"),
                  _MP4_AUDIO, "aac", faststart=True, fragmented=True),
        Container(".mov", "mov", "h264", ("h264", "hevc", "mpeg4", "mjpeg"),
                  ("aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le"), "aac",
                  faststart=True, fragmented=True),
        Container(".mkv", "matroska", "h264", CODEC_NAMES, _MKV_AUDIO, "aac"),
        Container(".webm", "webm", "vp9", ("vp9", "av1"), ("opus", "vorbis"), "libopus"),
        Container(".avi", "avi", "mjpeg", ("mjpeg", "mpeg4", "h264"),
                  ("mp3", "ac3", "pcm_s16le", "mp2"), "libmp3lame", variable_rate=False),
    )
}  # fmt: skip
EXTENSIONS = tuple(CONTAINERS)

#: a recording is cut into fragments of at most this many seconds (a keyframe starts each)
FRAGMENT_S = 1.0


@functools.cache
def encoder_present(name: str) -> bool:
    """True when this PyAV's FFmpeg has the encoder `name`.

    Examples:
        >>> encoder_present("mjpeg")
        True
    """
    try:
        import av

        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - unknown to this FFmpeg (or no PyAV at all)
        return False
    return True


def container_for(path: str) -> Container:
    """The container an output path's extension names, or LiveheatError.

    Examples:
        >>> container_for("out.MP4").format
        'mp4'
    """
    import os

    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in CONTAINERS:
        raise LiveheatError(
            f"cannot write video '{os.fspath(path)}': unsupported extension '{ext or '(none)'}';"
            f" use one of {', '.join(EXTENSIONS)}"
        )
    return CONTAINERS[ext]


@dataclass(frozen=True)
class Choice:
    """What one output will be written with (`choose`)."""

    container: Container
    codec: VideoCodec
    encoder: str
    crf: int
    preset: str | None

    def options(self, *, live: bool = False) -> dict[str, str]:
        """The encoder options (FFmpeg AVOptions, as text)."""
        c = self.codec
        opts = dict(c.options)
        if self.encoder == "libx264":
            opts["crf"] = str(self.crf)
            params = ["chroma-qp-offset=-3"]  # a heatmap is colour: chroma gets more bits
            if self.preset in ("ultrafast", "superfast") and not live:
                # the bench's best cheap gains: the macroblock tree over 10 frames, and PSNR
                # tuning (no adaptive quantisation), ~20% smaller at the same PSNR; sub-pixel
                # refinement 2, trellis and two reference frames, ~12% more for ~5 ms a frame
                params.insert(0, "mbtree=1:rc-lookahead=10:subme=2:trellis=1:ref=2")
                opts["tune"] = "psnr"
            if live:  # no reordering nor lookahead: frames reach the file (and a fragment
                # cut off plays to its last frame) a few frames after capture, times exact
                params.append("bframes=0")
            opts["x264-params"] = ":".join(params)
            opts["preset"] = str(self.preset)
        elif self.encoder == "libx265":
            opts.update(crf=str(self.crf), preset=str(self.preset))
            if live:
                opts["x265-params"] += ":bframes=0"
        elif self.encoder == "libvpx-vp9":
            opts.update(crf=str(self.crf), **{"cpu-used": str(self.preset)})
            if live:
                opts["lag-in-frames"] = "0"
        elif self.encoder == "libsvtav1":
            opts.update(crf=str(self.crf), preset=str(self.preset))
        elif self.encoder == "libaom-av1":
            opts.update(crf=str(self.crf), **{"cpu-used": str(min(8, int(self.preset or 8)))})
            opts.update(usage="realtime", **{"row-mt": "1"})
        else:  # mjpeg, mpeg4: a fixed quantiser. "q:v" is an ffmpeg command-line word that
            # the library ignores (and a qscale flag needs a quality on every frame): the
            # rate control held between qmin and qmax = N does it
            opts.update(qmin=str(self.crf), qmax=str(self.crf), b="100M")
        return opts

    def describe(self) -> str:
        """In words, for doctor and messages: 'h264 (libx264 superfast, crf 23)'."""
        bits = [self.encoder] + ([self.preset] if self.preset else [])
        q = "crf" if self.codec.name not in ("mjpeg", "mpeg4") else "q"
        return f"{self.codec.name} ({' '.join(bits)}, {q} {self.crf})"


def choose(
    path: str,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
) -> Choice:
    """What `path` will be written with: the extension's default codec unless `codec` names
    another, the first encoder of it that this FFmpeg has, and the quality and preset checked.

    Raises:
        LiveheatError: an extension, codec, CRF or preset that does not fit, or no encoder.

    Examples:
        >>> choose("out.mp4").describe()
        'h264 (libx264 superfast, crf 23)'
        >>> choose("out.webm", "h264")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: cannot write h264 into .webm: it holds vp9, av1; ...
    """
    cont = container_for(path)
    name = (codec or cont.default).lower()
    name = FOURCC_CODECS.get(name, name)
    if name not in VIDEO_CODECS:
        raise LiveheatError(f"unknown codec {codec!r}; expected one of {', '.join(CODEC_NAMES)}")
    if name not in cont.codecs:
        fits = [e for e, c in CONTAINERS.items() if name in c.codecs and e != ".m4v"]
        raise LiveheatError(
            f"cannot write {name} into {cont.ext}: it holds {', '.join(cont.codecs)}; "
            f"use {' or '.join(fits)} for {name}, or another --codec"
        )
    vc = VIDEO_CODECS[name]
    encoder = next((e for e in vc.encoders if encoder_present(e)), None)
    if encoder is None:
        raise LiveheatError(
            f"cannot write {name}: this FFmpeg (PyAV) has no {' or '.join(vc.encoders)} "
            "encoder; see `liveheat doctor` for the encoders present, or choose another --codec"
        )
    lo, hi = vc.crf_range
    q = vc.crf if crf is None else crf
    if isinstance(q, bool) or not isinstance(q, int) or not lo <= q <= hi:
        raise LiveheatError(
            f"--crf {crf!r} does not fit {name}: expected an integer in [{lo}, {hi}]"
        )
    if preset is not None and vc.preset is None:
        raise LiveheatError(f"{name} has no encoder presets; leave out --encoder-preset")
    chosen = vc.preset if preset is None else str(preset).lower()
    if chosen is not None and chosen not in vc.presets:
        raise LiveheatError(
            f"--encoder-preset {preset!r} does not fit {name}: expected one of "
            f"{', '.join(vc.presets)}"
        )
    return Choice(cont, vc, encoder, q, chosen)


def extension_table() -> list[tuple[str, str]]:
    """(extension, what it will use) for every output extension, from this table and this
    FFmpeg: e.g. ('.mp4', 'h264 (libx264 superfast, crf 23); sound: copy aac/..., else aac').

    Examples:
        >>> dict(extension_table())[".avi"].startswith("mjpeg")
        True
    """
    rows = []
    for ext, cont in CONTAINERS.items():
        try:
            video = choose("x" + ext).describe()
        except LiveheatError as e:
            video = f"unavailable ({e})"
        enc = cont.audio_encoder
        if enc is None or not encoder_present(enc):
            sound = f"copy {'/'.join(cont.audio_copy[:3])}, else none"
        else:
            sound = f"copy {'/'.join(cont.audio_copy[:3])}..., else {enc}"
        extra = []
        if ext in (".mp4", ".m4v", ".webm") and video.split()[0] in _BROWSER_CODECS:
            extra.append("plays in browsers")
        if cont.faststart:
            extra.append("faststart")
        if cont.fragmented:
            extra.append("fragmented when live")
        tail = f" [{', '.join(extra)}]" if extra else ""
        rows.append((ext, f"{video}; sound: {sound}{tail}"))
    return rows


_BROWSER_CODECS = tuple(n for n, c in VIDEO_CODECS.items() if c.browsers)

#: the encoders doctor lists (codec family, encoder names in order of preference)
DOCTOR_ENCODERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("h264", ("libx264",)),
    ("hevc", ("libx265",)),
    ("vp9", ("libvpx-vp9",)),
    ("av1", ("libsvtav1", "libaom-av1")),
    ("mjpeg", ("mjpeg",)),
    ("mpeg4", ("mpeg4",)),
    ("aac", ("aac",)),
    ("opus", ("libopus", "opus")),
    ("mp3", ("libmp3lame",)),
)
