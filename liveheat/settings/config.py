"""Settings from a TOML file and presets, layered in order."""

from __future__ import annotations

import difflib
import math
import os
import re
import typing
from pathlib import Path
from typing import Any

from liveheat._common.system import usable_cores
from liveheat.errors import LiveheatError
from liveheat.settings.fields import METHODS_FIXED, MODES, NORMS, Settings

PRESETS: tuple[str, ...] = ("edge",)
MAX_EVERY = 1000  # infer on every Nth frame: beyond this the heatmap would never change
MAX_CLIENTS = 1000  # stream viewers at once (each holds a thread)
MAX_THREADS = 256  # onnxruntime intra-op threads (each an OS thread, made at load)
MAX_INPUT_SIDE = 4096  # inference input side: activations grow with its square
_CHANNEL = re.compile(r"channel:[0-9]+")  # ASCII digits only, nothing after (fullmatch)
# flags that are not keys: what a config file says instead
_FLAG_ONLY = {
    "no_show": "write show = false",
    "no_hud": "write hud = false",
    "max_frames": "max-frames is a command-line flag only",
    "config": "config is a command-line flag only",
    "source": "the source is the command's argument",
}


def preset_values(name: str) -> dict[str, Any]:
    """The settings a preset stands for.

    `edge`: the int8 model, threads = cores - 1 (at least 1), a 160-pixel inference input,
    inference on every 2nd frame, and temporal smoothing on.

    Examples:
        >>> preset_values("edge")["every"]
        2
    """
    if name == "edge":
        return {
            "model": "int8",
            "threads": max(1, usable_cores() - 1),
            "input_size": 160,
            "every": 2,
            "smooth": 0.5,
        }
    raise LiveheatError(f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}; valid: edge")


def normalize_key(key: str) -> str:
    """Config/flag spelling to the `Settings` field name (`max-fps` -> `max_fps`).

    Examples:
        >>> normalize_key("max-fps")
        'max_fps'
    """
    return key.strip().replace("-", "_")


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}" if close else ""


def _colormaps() -> list[str]:
    try:
        from liveheat.draw.overlay import COLORMAPS

        return list(COLORMAPS)
    except ImportError:  # overlay not importable: fall back to OpenCV's own names
        import cv2

        return [n[len("COLORMAP_") :].lower() for n in dir(cv2) if n.startswith("COLORMAP_")]


def _type_name(tp: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def check_value(key: str, value: Any, *, where: str = "") -> Any:
    """Validate one setting (type and range) and return it in its canonical form.

    `key` must be a `Settings` field name. `where` names the source for the message
    (e.g. "in liveheat.toml"). Bad values raise `LiveheatError` saying what was expected.

    Examples:
        >>> check_value("alpha", 1)
        1.0
        >>> check_value("method", "channel:7")
        'channel:7'
    """
    hints = _hints()
    if key not in hints or key.startswith("_"):
        raise LiveheatError(
            f"unknown key {key!r}{(' ' + where) if where else ''}"
            f"{_did_you_mean(key, Settings.keys())}; valid: {', '.join(Settings.keys())}"
        )
    tp = hints[key]
    allowed = set(typing.get_args(tp)) or {tp}
    loc = f" {where}" if where else ""

    def bad(expected: str) -> LiveheatError:
        return LiveheatError(f"{key} = {value!r}{loc}: expected {expected}")

    if key == "serve" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # serve = 8080 in a config file
    if value is None:
        if type(None) in allowed:
            return None
        raise bad(_type_name(tp))
    if isinstance(value, bool):
        if bool not in allowed:
            raise bad(_type_name(tp))
    elif isinstance(value, int):
        if int in allowed:
            pass
        elif float in allowed:
            value = float(value)
        else:
            raise bad(_type_name(tp))
    elif isinstance(value, float):
        if float not in allowed:
            raise bad(_type_name(tp))
        if not math.isfinite(value):
            raise bad("a finite number")
    elif isinstance(value, str):
        if str not in allowed:
            raise bad(_type_name(tp))
    else:
        raise bad(_type_name(tp))
    return _check_range(key, value, bad)


def _check_range(key: str, value: Any, bad) -> Any:
    if key == "alpha" and not 0.0 <= value <= 1.0:
        raise bad("a number in [0, 1]")
    if key == "threshold" and not 0.0 <= value <= 1.0:
        raise bad("a number in [0, 1]")
    if key == "smooth" and not 0.0 <= value < 1.0:
        raise bad("a number in [0, 1) (0 = off)")
    if key == "every" and not 1 <= value <= MAX_EVERY:
        raise bad(f"an integer in [1, {MAX_EVERY}]")
    if key == "threads" and not 1 <= value <= MAX_THREADS:
        raise bad(f"an integer in [1, {MAX_THREADS}]")
    if key == "max_clients" and not 1 <= value <= MAX_CLIENTS:
        raise bad(f"an integer in [1, {MAX_CLIENTS}]")
    if key == "jpeg_quality" and not 1 <= value <= 100:
        raise bad("an integer in [1, 100]")
    if key == "max_fps" and value <= 0:
        raise bad("a number > 0")
    if key == "input_size" and (value < 32 or value % 32 or value > MAX_INPUT_SIDE):
        raise bad(f"a multiple of 32 in [32, {MAX_INPUT_SIDE}] (e.g. 160, 224)")
    if key == "method" and value not in METHODS_FIXED and not _CHANNEL.fullmatch(value):
        raise bad(
            f"one of {', '.join(METHODS_FIXED)} or channel:K"
            f"{_did_you_mean(value, METHODS_FIXED).replace(';', ',')}"
        )
    if key == "mode" and value not in MODES:
        raise bad(f"one of {', '.join(MODES)}{_did_you_mean(value, MODES).replace(';', ',')}")
    if key == "norm" and value not in NORMS:
        raise bad(f"one of {', '.join(NORMS)}{_did_you_mean(value, NORMS).replace(';', ',')}")
    if key == "colormap":
        names = _colormaps()
        if value not in names:
            raise bad(f"one of {', '.join(names)}{_did_you_mean(value, names).replace(';', ',')}")
    if key == "preset" and value not in PRESETS:
        raise bad(f"one of {', '.join(PRESETS)}")
    if key == "serve":
        parse_serve(value)
    return value


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
    text = str(spec).strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise LiveheatError(
            f"bad --serve value {text!r}: expected [HOST:]PORT with PORT in 0..65535 "
            "(e.g. 8080 for this machine only, 0.0.0.0:8080 for every interface)"
        )
    return host, port


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat TOML file of settings; return {field name: checked value}.

    Keys are `Settings` field names, written with `_` or `-` (`max_fps` or `max-fps`); for the
    inverted flags that means `show = false` and `hud = false` (not `no-show`, `no-hud`), and
    flags that are no setting (`max-frames`) have no key. An unknown key or a wrong type
    raises `LiveheatError` naming the key and the file (and what to write instead).

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "liveheat.toml"
        >>> _ = p.write_text('preset = "edge"\\nmax-fps = 10\\n')
        >>> load_config(p)
        {'preset': 'edge', 'max_fps': 10.0}
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise LiveheatError(
                "config files need Python 3.11+ (tomllib) or the tomli package: pip install tomli"
            ) from None
    p = Path(path)
    name = p.name
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise LiveheatError(f"config file {str(p)!r} not found; check the path") from None
    except OSError as e:
        raise LiveheatError(f"cannot read config file {str(p)!r}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise LiveheatError(f"{name} is not UTF-8 text; save it as a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise LiveheatError(f"{name} is not valid TOML: {e}") from None
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = normalize_key(key)
        if isinstance(value, dict):
            raise LiveheatError(
                f"[{key}] in {name} is a table; write settings as plain top-level keys "
                "(alpha = 0.5)"
            )
        if field in _FLAG_ONLY:
            raise LiveheatError(f"unknown key {key!r} in {name}; {_FLAG_ONLY[field]}")
        if field not in Settings.keys():
            raise LiveheatError(
                f"unknown key {key!r} in {name}{_did_you_mean(field, Settings.keys())}; "
                f"valid: {', '.join(Settings.keys())}"
            )
        if field in out:
            raise LiveheatError(f"{name} sets {field} twice ({key!r}); keep one")
        out[field] = check_value(field, value, where=f"in {name}")
    return out


def build_settings(
    flags: dict[str, Any] | None = None,
    *,
    config: str | os.PathLike | None = None,
    preset: str | None = None,
) -> Settings:
    """Layer defaults < preset < config file < explicit flags into one checked `Settings`.

    `flags` holds only the flags the user gave (value None = not given). The preset is the
    `preset` argument, else the flag `preset`, else the config file's `preset` key; either way
    it sits below the config file's other keys, so a config can start from `edge` and adjust it.

    Examples:
        >>> s = build_settings({"every": 3}, preset="edge")
        >>> (s.model, s.every, s.input_size)
        ('int8', 3, 160)
    """
    given = {normalize_key(k): v for k, v in (flags or {}).items() if v is not None}
    for k in given:
        if k not in Settings.keys():
            raise LiveheatError(f"unknown setting {k!r}; valid: {', '.join(Settings.keys())}")
    from_file = load_config(config) if config is not None else {}
    name = preset or given.get("preset") or from_file.get("preset")
    values: dict[str, Any] = {}
    if name:
        values.update(preset_values(name))
        values["preset"] = name
    values.update(from_file)
    if name:
        values["preset"] = name
    for k, v in given.items():
        values[k] = check_value(k, v)
    return Settings(**values)
