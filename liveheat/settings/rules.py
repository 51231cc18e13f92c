"""The rules settings are checked by: the vocabularies, the limits, and `Spec`, the rule
of one setting (its range, choices, flag and help). `fields.validate` applies them."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from liveheat.errors import LiveheatError

#: the heatmap methods with a fixed name; `channel:K` (K a channel number) is the other kind
METHODS_FIXED = ("cam", "eigen", "mean", "max", "norm")
#: every method as a user writes it (the one list: model.heatmaps shows the same)
METHODS = (*METHODS_FIXED, "channel:K")
MODES = ("color", "gray", "mask", "transparent")
NORMS = ("minmax", "percentile", "sigmoid", "fixed", "none")
PRESETS = ("edge",)
SMOOTHERS = ("euro", "ema")
SCALES = ("steady", "frame")
MAX_EVERY = 1000  # infer on every Nth frame: beyond this the heatmap would never change
MAX_CLIENTS = 1000  # stream viewers at once (each holds a thread)
MAX_THREADS = 256  # onnxruntime intra-op threads (each an OS thread, made at load)
MAX_INPUT_SIDE = 4096  # inference input side: activations grow with its square
SERVE_FORMAT = (
    "[HOST:]PORT with PORT in 0..65535 "
    "(e.g. 8080 for this machine only, 0.0.0.0:8080 for every interface)"
)
_CHANNEL = re.compile(r"channel:[0-9]+")  # ASCII digits only, nothing after (fullmatch)
_SHOWN = 80  # a bad value is shown in a message up to this many characters


class SettingError(LiveheatError, ValueError):
    """A setting with a value outside its rule (also a ValueError, as the drawing raised).

    Args:
        *args: the message: the key, the value and what was expected.

    Examples:
        >>> try:
        ...     raise SettingError("alpha = 2: expected a number in [0, 1]")
        ... except ValueError as e:  # a LiveheatError too
        ...     isinstance(e, LiveheatError), str(e)
        (True, 'alpha = 2: expected a number in [0, 1]')
    """


@functools.cache
def colormap_names() -> tuple[str, ...]:
    """OpenCV's colormaps by lower-case name (``jet`` for ``cv2.COLORMAP_JET``), read lazily.

    Examples:
        >>> "jet" in colormap_names() and "turbo" in colormap_names()
        True
    """
    import cv2

    names = (n for n in sorted(dir(cv2)) if n.startswith("COLORMAP_"))
    return tuple(n[len("COLORMAP_") :].lower() for n in names)


HUD_PARTS = ("label", "bar", "perf")


def hud_parts(value: str, *, recording: bool = True) -> tuple[str, ...] | None:
    """The HUD parts a `hud_parts` value names, in order (None: not a valid value).

    Examples:
        >>> hud_parts("bar,label"), hud_parts("auto"), hud_parts("auto", recording=False)
        (('label', 'bar'), ('label', 'bar'), ('label', 'bar', 'perf'))
        >>> hud_parts("labels") is None
        True
    """
    text = str(value).strip().lower()
    if text == "auto":
        return ("label", "bar") if recording else HUD_PARTS
    if text == "all":
        return HUD_PARTS
    parts = {p.strip() for p in text.split(",") if p.strip()}
    if not parts or not parts <= set(HUD_PARTS):
        return None
    return tuple(p for p in HUD_PARTS if p in parts)


def parse_serve(spec: str | int) -> tuple[str, int]:
    """`--serve` value to (host, port): `8080` binds loopback, `0.0.0.0:8080` every interface.

    Examples:
        >>> parse_serve("8080")
        ('127.0.0.1', 8080)
        >>> parse_serve("0.0.0.0:8080")
        ('0.0.0.0', 8080)
        >>> parse_serve("[::1]:8080")
        ('::1', 8080)
    """
    parsed = _split_serve(spec)
    if parsed is None:
        raise SettingError(f"serve = {_shown(spec)}: expected {SERVE_FORMAT}")
    return parsed


def _split_serve(spec: Any) -> tuple[str, int] | None:
    text = str(spec).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isascii() or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        return None
    return host, int(port_text)


@dataclass(frozen=True)
class Spec:
    """The rule for one setting. `range` is an interval as text: "[0, 1]", "[0, 1)", "(0, inf)".

    A frozen record; `Settings` makes one per field (`SPECS[name]`) and fills `name`,
    `default`, `types` and `optional` from the field. The constructor checks nothing.

    Args:
        help: the flag's help text.
        range: the interval a number must lie in; None: any.
        step: a number must be a multiple of this; None: any.
        choices: the closed vocabulary (or a function giving it); None: open.
        pattern: (regex, as shown): another accepted spelling (``channel:K``).
        prefix: dropped from a word before it is looked up (``colormap_``).
        note: said after what was expected (``0 = off``).
        live: may change mid-run.
        drawing: live and shapes the drawing (a change that cannot be drawn is undone).
        flag: "" for ``--the-name``; None for no flag; ``"--no-x"`` for a flag setting False.
        short: a one-letter flag beside the long one; None: none.
        metavar: the flag's metavar; None: argparse's.
        default_text: the default in words for help.
        check: another test of the value; None: none.
        expected: `check`'s rule in words.
        int_as_str: an integer is taken as its text (``serve = 8080``).
        name: the field name.
        default: the field's default.
        types: the types a value may have.
        optional: None is allowed.

    Examples:
        >>> from liveheat.settings import SPECS
        >>> spec = SPECS["alpha"]
        >>> spec.flag_name, spec.wanted(), spec.in_range(0.5), spec.in_range(2)
        ('--alpha', 'a number in [0, 1]', True, False)
        >>> Spec("a test", range="(0, inf)", types=(float,)).wanted()
        'a number > 0'
    """

    help: str
    range: str | None = None
    step: int | None = None  # the value must be a multiple of this
    choices: tuple[str, ...] | Callable[[], Sequence[str]] | None = None  # closed vocabulary
    pattern: tuple[str, str] | None = None  # (regex, as shown): another accepted spelling
    prefix: str = ""  # dropped from a choice before it is looked up (colormap_jet -> jet)
    note: str = ""  # said after what was expected: "0 = off"
    live: bool = False  # may change mid-run (a key, the stream page, the API)
    drawing: bool = False  # live and shapes the drawing: a change that cannot be drawn is undone
    flag: str | None = ""  # "" = --the-name; None = no flag; "--no-x": the flag sets it False
    short: str | None = None  # a one-letter flag beside the long one ("-o")
    metavar: str | None = None
    default_text: str = ""  # the default in words for help, where None means "chosen later"
    check: Callable[[Any], bool] | None = None  # another test, with `expected` as its words
    expected: str = ""
    int_as_str: bool = False  # an integer is taken as its text (serve = 8080)
    # filled from the dataclass field: name, default, the types it may hold, None allowed
    name: str = ""
    default: Any = None
    types: tuple[type, ...] = ()
    optional: bool = False

    @property
    def flag_name(self) -> str | None:
        """The long command-line flag (``--max-fps``, ``--no-show``), or None."""
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    def choice_list(self) -> tuple[str, ...]:
        """The closed vocabulary (read now for a lazy one), or ()."""
        c = self.choices
        return tuple(c() if callable(c) else c or ())

    def kind(self) -> str:
        """What the value is, in words: 'a number', 'an integer', 'true/false', ..."""
        words = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
        if float in self.types:
            return words[float]
        return " or ".join(words[t] for t in self.types)

    def wanted(self) -> str:
        """What a good value is, in words (after 'expected ')."""
        if self.expected:
            return self.expected
        if self.choices is not None:
            extra = f" or {self.pattern[1]}" if self.pattern else ""
            return f"one of {', '.join(self.choice_list())}{extra}"
        if self.range is None:
            return self.kind()
        lo, hi = (s.strip() for s in self.range[1:-1].split(","))
        if hi == "inf":
            text = f"{self.kind()} {'>' if self.range[0] == '(' else '>='} {lo}"
        elif self.step:
            text = f"a multiple of {self.step} in {self.range}"
        else:
            text = f"{self.kind()} in {self.range}"
        return f"{text} ({self.note})" if self.note else text

    @functools.cached_property
    def _bounds(self) -> tuple[float, float, bool, bool]:
        lo, hi = (float(s) for s in self.range[1:-1].split(","))  # type: ignore[index]
        return lo, hi, self.range[0] == "(", self.range[-1] == ")"  # type: ignore[index]

    def in_range(self, value: float) -> bool:
        """Whether a number lies in `range` (and is a multiple of `step`)."""
        if self.range is None:
            return True
        lo, hi, low_open, high_open = self._bounds
        low_ok = value > lo if low_open else value >= lo
        high_ok = value < hi if high_open else value <= hi
        return low_ok and high_ok and not (self.step and value % self.step)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def check_fixed_scale(norm: str, vmin: float | None, vmax: float | None) -> None:
    """`--norm fixed` needs `--vmin A --vmax B` with A < B (the one rule across two settings).

    Raises:
        SettingError: a missing or reversed bound.

    Examples:
        >>> check_fixed_scale("minmax", None, None)
        >>> check_fixed_scale("fixed", 0.0, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        liveheat.settings.rules.SettingError: --norm fixed needs --vmin A --vmax B ...
    """
    if norm != "fixed":
        return
    if vmin is None or vmax is None:
        raise SettingError(
            "--norm fixed needs --vmin A --vmax B (the map values drawn coldest and hottest; "
            "the colour bar of a run shows your maps' range)"
        )
    if not vmin < vmax:
        raise SettingError(f"--norm fixed needs vmin < vmax, got vmin={vmin} vmax={vmax}")


def parse_duration(text: str | float | None) -> float | None:
    """A duration as seconds: `30s`, `10m`, `1h`, `1h30m`, `90` (seconds); None when it is not
    one, or shorter than 1 s.

    Examples:
        >>> parse_duration("10m"), parse_duration("1h30m"), parse_duration("90")
        (600.0, 5400.0, 90.0)
        >>> parse_duration("soon") is None, parse_duration("0s") is None
        (True, True)
    """
    if text is None or isinstance(text, bool):
        return None
    words = str(text).strip().lower().replace(" ", "")
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", words)
    if not words or m is None or not any(m.groups()):
        return None
    h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
    seconds = 3600 * h + 60 * mins + secs
    return seconds if 1 <= seconds < 10**9 else None
