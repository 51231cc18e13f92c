"""The Settings dataclass and its specs: one rule per field, checked by one `validate`.

Each field is declared once, with its default, type (the annotation), range or choices,
whether it may change mid-run, and its help text; flags, config files, keys, the stream page
and the API all check values through `validate`, so a bad value reads the same everywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import re
import threading
import typing
from dataclasses import dataclass, field
from typing import Any

from liveheat._common.text import did_you_mean
from liveheat.settings.rules import (  # noqa: F401 - the vocabularies are imported from here too
    _CHANNEL,
    _SHOWN,
    HUD_PARTS,
    MAX_CLIENTS,
    MAX_EVERY,
    MAX_INPUT_SIDE,
    MAX_THREADS,
    METHODS,
    METHODS_FIXED,
    MODES,
    NORMS,
    PRESETS,
    SCALES,
    SERVE_FORMAT,
    SMOOTHERS,
    SettingError,
    Spec,
    _shown,
    _split_serve,
    colormap_names,
    hud_parts,
    parse_duration,
    parse_serve,
)

#: the video codecs a file may be written with (outputs/codecs.py has their table)
VIDEO_CODECS = ("h264", "hevc", "vp9", "av1", "mjpeg", "mpeg4")
DEVICES = ("auto", "cpu", "cuda", "tensorrt", "openvino", "coreml", "directml")
#: OpenCV capture backends a camera may be opened with (any: OpenCV picks)
CAMERA_BACKENDS = ("any", "v4l2", "gstreamer", "dshow", "msmf", "avfoundation")


def _wxh(text: str) -> tuple[int, int] | None:
    """'1280x720' -> (1280, 720); None when it is not a size."""
    m = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", str(text))
    return (int(m.group(1)), int(m.group(2))) if m and all(int(g) > 0 for g in m.groups()) else None


def _setting(default: Any, help: str, **rule: Any) -> Any:
    """A dataclass field whose metadata holds its Spec (completed once the class exists)."""
    return field(default=default, metadata={"spec": Spec(help, **rule)})


def _encoder_option(help: str, defaults: str, **rule: Any) -> Any:
    """An encoder setting left to the codec unless given (the codec's defaults in words)."""
    return _setting(None, help, default_text=f"the codec's: {defaults}", **rule)


def _drawing(default: Any, help: str, **rule: Any) -> Any:
    return _setting(default, help, live=True, drawing=True, **rule)


@dataclass
class Settings:
    """Everything that shapes a run. Field names equal the long command-line flags.

    Every value is checked by its spec (`SPECS`), on construction and in `update()`; a bad one
    raises `SettingError` (a `LiveheatError` and a `ValueError`) saying what was expected.
    Each field's rule and help is in `SPECS[name]`; in short:

    Args:
        model: ``"int8"`` or an .onnx file; None: the bundled fp32 model.
        layer: the feature map to explain (``liveheat layers`` lists them); None: the model's.
        method: how features become a map: cam, eigen, mean, max, norm or ``channel:K``.
        target: the class a CAM explains: ``"auto"``, ``"top1"``, a class index or name.
        input_size: the inference input side in pixels (a multiple of 32); None: the model's.
        device: where the model runs: auto, cpu, cuda, tensorrt, openvino, coreml, directml.
        threads: onnxruntime threads; None: chosen from the cores.
        colormap: an OpenCV colormap name (jet, turbo, inferno, ...).
        alpha: the heatmap's opacity in [0, 1].
        mode: how the map is drawn: color, gray, mask or transparent.
        norm: how the map is scaled to [0, 1]: minmax, percentile, sigmoid, fixed or none.
        threshold: heat below this (in [0, 1]) is not drawn; None: all is drawn.
        panels: draw original | heatmap | overlay side by side.
        hud: draw text and the colour bar on the frames.
        hud_parts: what the HUD draws: auto, all, or parts from label, bar, perf.
        smooth: temporal smoothing of the maps on video (0: off).
        smoother: ``"euro"`` (adaptive) or ``"ema"`` (a moving average).
        scale: the colour range on video under minmax: ``"steady"`` within a shot, or each
            map's own.
        vmin: with ``norm="fixed"``, the map value drawn coldest.
        vmax: with ``norm="fixed"``, the map value drawn hottest.
        every: infer on every Nth frame.
        max_fps: read at most this many frames a second; None: no limit.
        paused: hold the current frame.
        cam_size, cam_fps, cam_fourcc, cam_backend: what to ask a camera for (size "WxH",
            rate, pixel format) and the OpenCV backend to open it with; None: its own.
        open_timeout: seconds a camera or stream has to deliver its first frame.
        show: open a window when a display exists.
        output: a video file to write (.mp4 .mov .mkv .webm .avi); None: none.
        codec: the video codec of the file; None: by extension (h264, vp9, mjpeg).
        crf: the video quality (lower is better and larger); None: the codec's default.
        encoder_preset: the encoder's speed preset; None: the codec's default.
        audio: keep the source's sound in the video file.
        segment: start a new video file every DURATION (e.g. ``"10m"``); None: one file.
        dump_maps: an .npz file to save the raw heatmaps to; None: none.
        serve: serve the stream to browsers (``"8080"``, ``"0.0.0.0:8080"``); None: no server.
        token: a token every stream request must carry; None: none.
        jpeg_quality: the stream's JPEG quality.
        max_clients: the stream's viewers at once.
        preset: a named set of values (``"edge"``); `build_settings` applies it under the
            values given, `Settings` itself only records it.

    Raises:
        SettingError: a field's value breaks its rule (the message says what was expected).

    Examples:
        >>> Settings(alpha=0.7, colormap="COLORMAP_TURBO").colormap
        'turbo'
        >>> Settings(alpha=2)
        Traceback (most recent call last):
        ...
        liveheat.settings.rules.SettingError: alpha = 2: expected a number in [0, 1]
    """

    # model / heatmap
    model: str | None = _setting(
        None, "'int8' or an .onnx file", default_text="the bundled fp32 model"
    )
    layer: str | None = _setting(None, "feature map to explain (see: liveheat layers)")
    method: str = _drawing(
        "cam",
        "how the features become a map",
        choices=METHODS_FIXED,
        pattern=(_CHANNEL.pattern, "channel:K"),
        metavar="{" + ",".join(METHODS) + "}",
    )
    target: str | int | None = _drawing(
        "auto",
        "the class a CAM explains: auto (on video, held until another class leads clearly), "
        "top1 (each frame's top class), or a class index or name",
    )
    input_size: int | None = _setting(
        None,
        "inference input side",
        default_text="the model's",
        range=f"[32, {MAX_INPUT_SIDE}]",
        step=32,
        note="e.g. 160, 224",
        metavar="PX",
    )
    device: str = _setting(
        "auto",
        "where the model runs (onnxruntime's execution providers; auto: CUDA, CoreML, DirectML "
        "or OpenVINO when this onnxruntime has it, else the CPU)",
        choices=DEVICES,
    )
    threads: int | None = _setting(
        None,
        "onnxruntime threads",
        range=f"[1, {MAX_THREADS}]",
        default_text="the cores but one",
        metavar="N",
    )
    # drawing
    colormap: str = _drawing(
        "jet",
        "OpenCV colormap: jet, turbo, inferno, viridis, ... (any cv2.COLORMAP_*)",
        choices=colormap_names,
        prefix="colormap_",
        metavar="NAME",
    )
    alpha: float = _drawing(0.5, "heatmap opacity", range="[0, 1]")
    mode: str = _drawing("color", "how the map is drawn", choices=MODES)
    norm: str = _drawing("minmax", "how the map is scaled to [0, 1]", choices=NORMS)
    threshold: float | None = _drawing(None, "hide heat below this", range="[0, 1]")
    panels: bool = _drawing(False, "side by side: original | heatmap | overlay")
    hud: bool = _drawing(True, "no text or colour bar on the frames", flag="--no-hud")
    hud_parts: str = _drawing(
        "auto",
        "what the HUD draws: auto (label,bar when a file is written, else all), all, or parts "
        "from label (the class and method), bar (the colour scale), perf (fps, time per frame)",
        check=lambda v: hud_parts(v) is not None,
        expected="auto, all, or a comma list of label, bar, perf",
        flag="--hud",
        metavar="PARTS",
    )
    # video
    smooth: float = _drawing(
        0.75, "temporal smoothing of the maps on video", range="[0, 1)", note="0 = off"
    )
    smoother: str = _drawing(
        "euro",
        "euro: adaptive, little lag on motion; ema: a plain moving average",
        choices=SMOOTHERS,
    )
    scale: str = _drawing(
        "steady",
        "colour range on video with --norm minmax: steady within a shot, or each map's own",
        choices=SCALES,
    )
    vmin: float | None = _drawing(None, "with --norm fixed: the map value drawn coldest")
    vmax: float | None = _drawing(None, "with --norm fixed: the map value drawn hottest")
    every: int = _setting(
        1, "infer on every Nth frame", range=f"[1, {MAX_EVERY}]", live=True, metavar="N"
    )
    max_fps: float | None = _setting(
        None, "read at most this many frames a second", range="(0, inf)"
    )
    paused: bool = _setting(
        False, "hold the current frame (space key, stream page)", live=True, flag=None
    )
    cam_size: str | None = _setting(
        None, "ask the camera for this frame size", check=lambda v: _wxh(v) is not None,
        expected="WIDTHxHEIGHT, e.g. 1280x720", metavar="WxH", default_text="the camera's",
    )  # fmt: skip
    cam_fps: float | None = _setting(
        None, "ask the camera for this frame rate", range="(0, 1000]", metavar="N",
        default_text="the camera's",
    )  # fmt: skip
    cam_fourcc: str | None = _setting(
        None, "ask the camera for this pixel format (MJPG, YUYV, H264)",
        check=lambda v: len(v) == 4 and v.isascii() and v.isprintable(), expected="4 characters",
        metavar="CODE", default_text="the camera's",
    )  # fmt: skip
    cam_backend: str = _setting(
        "any", "OpenCV's capture backend for a camera", choices=CAMERA_BACKENDS
    )
    open_timeout: float = _setting(
        3.0, "seconds a camera or stream has to deliver its first frame", range="(0, 600]",
        metavar="SECONDS",
    )  # fmt: skip
    # outputs
    show: bool = _setting(True, "no window, even with a display", flag="--no-show")
    output: str | None = _setting(
        None, "video file: .mp4 .mov .mkv .webm .avi", short="-o", metavar="OUT"
    )
    codec: str | None = _setting(
        None,
        "video codec of the file",
        choices=VIDEO_CODECS,
        default_text="by extension: h264 for .mp4 .mov .mkv, vp9 for .webm, mjpeg for .avi",
    )
    crf: int | None = _encoder_option(
        "video quality, lower is better and larger (mjpeg, mpeg4: their quantiser 2-31)",
        "h264 23, vp9 31",
        range="[0, 63]",
        metavar="N",
    )
    encoder_preset: str | None = _encoder_option(
        "encoder speed: x264 ultrafast..veryslow, vp9 cpu-used 0-8, av1 0-13",
        "h264 superfast, vp9 8",
        metavar="NAME",
        int_as_str=True,
    )
    audio: bool = _setting(
        True, "leave the source's sound out of the video file", flag="--no-audio"
    )
    segment: str | None = _setting(
        None,
        "start a new video file every DURATION, each named by its start time",
        check=lambda v: parse_duration(v) is not None,
        expected="a duration of at least 1 s such as 30s, 10m, 1h or 90 (seconds)",
        int_as_str=True,
        metavar="DURATION",
    )
    dump_maps: str | None = _setting(None, "save the raw heatmaps (npz)", metavar="MAPS.npz")
    serve: str | None = _setting(
        None,
        "serve the stream to browsers (8080: this machine only; 0.0.0.0:8080: every interface)",
        check=lambda v: _split_serve(v) is not None,
        expected=SERVE_FORMAT,
        int_as_str=True,
        metavar="[HOST:]PORT",
    )
    token: str | None = _setting(
        None,
        "every request needs ?token= or a Bearer header",
        default_text="$LIVEHEAT_TOKEN",
        # an empty token would turn authentication off without a word; a space would work in
        # the query but not in an Authorization header
        check=lambda v: bool(v) and v.isprintable() and not any(c.isspace() for c in v),
        expected="a non-empty token without spaces",
    )
    jpeg_quality: int = _setting(80, "stream JPEG quality", range="[1, 100]", metavar="Q")
    max_clients: int = _setting(
        8, "stream viewers at once", range=f"[1, {MAX_CLIENTS}]", metavar="N"
    )
    preset: str | None = _setting(
        None,
        "edge: int8 model, cores-1 threads, 160 px input, --every 2, smoothing on",
        choices=PRESETS,
    )
    # live changes from several threads go through this lock
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for name in SPECS:
            setattr(self, name, validate(name, getattr(self, name)))

    @classmethod
    def keys(cls) -> list[str]:
        """The public field names (the keys a config file may use)."""
        return list(SPECS)

    def update(self, **changes: Any) -> None:
        """Check every change, then apply them all atomically; a bad one changes nothing.

        Examples:
            >>> s = Settings()
            >>> s.update(alpha=0.25, mode="MASK"); (s.alpha, s.mode)
            (0.25, 'mask')
        """
        checked = {k: validate(k, v) for k, v in changes.items()}
        with self._lock:
            for k, v in checked.items():
                setattr(self, k, v)

    def check(self) -> None:
        """Check every field again (catches values assigned directly, bypassing `update`)."""
        for name in SPECS:
            validate(name, getattr(self, name))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a worker process, a Ray task) without its lock; `__setstate__` makes one.

        Examples:
            >>> import pickle
            >>> pickle.loads(pickle.dumps(Settings(alpha=0.3))).alpha
            0.3
        """
        return {k: getattr(self, k) for k in SPECS}  # no lock here: snapshot() holds it

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def snapshot(self) -> Settings:
        """A consistent copy for one frame's work (its own lock; the values are not rechecked)."""
        with self._lock:
            snap = copy.copy(self)
        snap._lock = threading.Lock()
        return snap


def _complete_specs() -> dict[str, Spec]:
    hints = typing.get_type_hints(Settings)
    specs = {}
    for f in dataclasses.fields(Settings):
        if f.name.startswith("_"):
            continue
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        types = tuple(a for a in args if a is not type(None))
        specs[f.name] = dataclasses.replace(
            f.metadata["spec"],
            name=f.name,
            default=f.default,
            types=types,
            optional=type(None) in args,
        )
    return specs


#: the rule of every setting, by field name, in the dataclass's order
SPECS: dict[str, Spec] = _complete_specs()
#: the settings that may change mid-run (a key, the stream page, the API)
LIVE_FIELDS: tuple[str, ...] = tuple(k for k, s in SPECS.items() if s.live)
#: the live settings that shape the drawing: the pipeline undoes a change among these that
#: cannot be drawn (pausing or --every are never undone)
DRAWING_FIELDS: tuple[str, ...] = tuple(k for k, s in SPECS.items() if s.drawing)


def validate(key: str, value: Any, *, where: str = "") -> Any:
    """Check one setting against its spec and return it in canonical form.

    `where` names the source for the message ("in liveheat.toml", "from --alpha"). A bad value
    raises `SettingError` saying the key, the value and what was expected, the same words
    whichever way the value came. Numbers: an integer is a fine float (``alpha = 1``);
    words: case-insensitive (``COLORMAP_JET`` is ``jet``).

    Args:
        key: the `Settings` field name (``"alpha"``).
        value: the value to check.
        where: where the value came from, for the message; "": not said.

    Returns:
        The value in canonical form (``1`` -> ``1.0`` for a float field, words lower-cased).

    Raises:
        SettingError: an unknown key, or a value outside the field's rule.

    Examples:
        >>> validate("alpha", 1)
        1.0
        >>> validate("colormap", "COLORMAP_JET")
        'jet'
        >>> validate("method", "channel:7")
        'channel:7'
        >>> validate("alpha", 2, where="in x.toml")
        Traceback (most recent call last):
        ...
        liveheat.settings.rules.SettingError: alpha = 2 in x.toml: expected a number in [0, 1]
    """
    memo = (key, type(value), value) if type(value) in _MEMO_TYPES else None
    if memo is not None:
        hit = _memo.get(memo, _MISS)
        if hit is not _MISS:
            return hit
    out = _validate(key, value, where)
    if memo is not None and len(_memo) < 4096:
        _memo[memo] = out
    return out


# validate() is called on every overlay call (mode, alpha, threshold, norm, colormap): a good
# value of an immutable type is checked once and remembered (a bad one is never remembered)
_MEMO_TYPES = (str, int, float, bool, type(None))
_MISS = object()
_memo: dict[tuple, Any] = {}


def _validate(key: str, value: Any, where: str) -> Any:
    spec = SPECS.get(key)
    loc = f" {where}" if where else ""
    if spec is None:
        raise SettingError(
            f"unknown key {_shown(key)}{loc};{did_you_mean(key, SPECS, before=' ')} "
            f"valid: {', '.join(SPECS)}"
        )

    def bad(expected: str) -> SettingError:
        return SettingError(f"{key} = {_shown(value)}{loc}: expected {expected}")

    out = value
    if value is None:
        if spec.optional:
            return None
        raise bad(spec.kind())
    if isinstance(value, bool):
        if bool not in spec.types:
            raise bad(spec.wanted() if spec.range is None else spec.kind())
    elif isinstance(value, numbers.Integral):
        if int in spec.types:
            out = int(value)
        elif float in spec.types:
            out = float(value)
        elif spec.int_as_str:
            out = str(int(value))
        else:
            raise bad(spec.kind())
    elif isinstance(value, numbers.Real):
        if float not in spec.types:
            raise bad(spec.kind())
        out = float(value)
        if not math.isfinite(out):
            raise bad("a finite number")
    elif isinstance(value, str):
        if str not in spec.types:
            raise bad(spec.kind())
    else:
        raise bad(spec.kind())
    if isinstance(out, bool):
        return out
    if isinstance(out, (int, float)):
        if not spec.in_range(out):
            raise bad(spec.wanted())
        return out
    if spec.choices is not None:
        word = out.lower()
        if spec.prefix and word.startswith(spec.prefix):
            word = word[len(spec.prefix) :]
        choices = spec.choice_list()
        if word in choices or (spec.pattern and re.fullmatch(spec.pattern[0], word)):
            return word
        raise bad(spec.wanted() + did_you_mean(word, choices, before="; "))
    if spec.check is not None and not spec.check(out):
        raise bad(spec.wanted())
    return out
