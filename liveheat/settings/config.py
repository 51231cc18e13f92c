"""Settings from a TOML file and presets, layered in order; every value checked by `validate`."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from liveheat._common.system import usable_cores
from liveheat._common.text import did_you_mean
from liveheat.errors import LiveheatError
from liveheat.settings.fields import (
    MAX_CLIENTS,
    MAX_EVERY,
    MAX_INPUT_SIDE,
    MAX_THREADS,
    PRESETS,
    SPECS,
    Settings,
    colormap_names,
    parse_serve,
    validate,
)

__all__ = [  # MAX_*, PRESETS and parse_serve live in fields now; importable here as before
    "MAX_CLIENTS",
    "MAX_CONFIG_BYTES",
    "MAX_EVERY",
    "MAX_INPUT_SIDE",
    "MAX_THREADS",
    "PRESETS",
    "build_settings",
    "check_value",
    "load_config",
    "normalize_key",
    "parse_serve",
    "preset_values",
]

MAX_CONFIG_BYTES = 1 << 20  # a settings file is a few lines; more is not one
# flags that are not keys: what a config file says instead
_FLAG_ONLY = {
    "no_show": "write show = false",
    "no_hud": "write hud = false",
    "max_frames": "max-frames is a command-line flag only",
    "config": "config is a command-line flag only",
    "source": "the source is the command's argument",
}

#: the old name of `validate` (same rule, same messages)
check_value = validate


def _colormaps() -> list[str]:
    """The colormap names (kept for callers of the old helper; see `colormap_names`)."""
    return list(colormap_names())


def preset_values(name: str) -> dict[str, Any]:
    """The settings a preset stands for.

    `edge`: the int8 model, threads = cores - 1 (at least 1), a 160-pixel inference input,
    inference on every 2nd frame, and temporal smoothing on.

    Args:
        name: the preset's name (``"edge"``).

    Returns:
        {field name: value} the preset sets.

    Raises:
        LiveheatError: an unknown preset (the message suggests a close name).

    Examples:
        >>> preset_values("edge")["every"]
        2
        >>> preset_values("egde")
        Traceback (most recent call last):
        ...
        liveheat.errors.LiveheatError: unknown preset 'egde'; did you mean 'edge'? valid: edge
    """
    if name == "edge":
        return {
            "model": "int8",
            "threads": max(1, usable_cores() - 1),
            "input_size": 160,
            "every": 2,
            "smooth": 0.5,
        }
    raise LiveheatError(
        f"unknown preset {name!r};{did_you_mean(name, PRESETS, before=' ')} "
        f"valid: {', '.join(PRESETS)}"
    )


def normalize_key(key: str) -> str:
    """Config/flag spelling to the `Settings` field name (`max-fps` -> `max_fps`).

    Examples:
        >>> normalize_key("max-fps")
        'max_fps'
    """
    return key.strip().replace("-", "_")


def _read_capped(p: Path) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES; LiveheatError otherwise.

    Opened without blocking and checked before reading, so a FIFO, a device (/dev/zero) or a
    folder is refused at once instead of hanging or filling memory.
    """
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise LiveheatError(f"config file {str(p)!r} not found; check the path") from None
    except OSError as e:
        raise LiveheatError(f"cannot read config file {str(p)!r}: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise LiveheatError(f"config file {str(p)!r} is a folder; give a .toml file")
        raise LiveheatError(
            f"config file {str(p)!r} is not a regular file (a pipe or device); give a .toml file"
        )
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as e:
            raise LiveheatError(f"cannot read config file {str(p)!r}: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise LiveheatError(
            f"config file {str(p)!r} is over {MAX_CONFIG_BYTES // (1 << 20)} MiB; "
            "a settings file is a few lines of key = value"
        )
    return raw


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a flat TOML file of settings; return {field name: checked value}.

    Keys are `Settings` field names, written with `_` or `-` (`max_fps` or `max-fps`); for the
    inverted flags that means `show = false` and `hud = false` (not `no-show`, `no-hud`), and
    flags that are no setting (`max-frames`) have no key. An unknown key or a wrong type
    raises `LiveheatError` naming the key and the file (and what to write instead); so does a
    file that is no regular file, is over 1 MiB, or nests too deeply to parse.

    Args:
        path: the TOML file.

    Returns:
        {field name: checked value} for each key in the file.

    Raises:
        LiveheatError: the file cannot be read or parsed, or holds an unknown key, a table or
            a bad value (`SettingError`, naming the file).

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
    raw = _read_capped(p)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise LiveheatError(f"{name} is not UTF-8 text; save it as a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise LiveheatError(f"{name} is not valid TOML: {e}") from None
    except RecursionError:
        raise LiveheatError(
            f"{name} nests too deeply to read; write settings as plain top-level keys (alpha = 0.5)"
        ) from None
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
        if field not in SPECS:
            raise LiveheatError(
                f"unknown key {key!r} in {name};{did_you_mean(field, SPECS, before=' ')} "
                f"valid: {', '.join(SPECS)}"
            )
        if field in out:
            raise LiveheatError(f"{name} sets {field} twice ({key!r}); keep one")
        out[field] = validate(field, value, where=f"in {name}")
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

    Args:
        flags: {field or flag name: value} the user gave; None values count as not given.
        config: a TOML file of settings (see `load_config`); None: none.
        preset: a preset name (``"edge"``); None: the flag's or the config file's, if any.

    Returns:
        The checked `Settings`.

    Raises:
        SettingError: a bad or unknown flag value (a `LiveheatError`).
        LiveheatError: a bad config file or an unknown preset.

    Examples:
        >>> s = build_settings({"every": 3}, preset="edge")
        >>> (s.model, s.every, s.input_size)
        ('int8', 3, 160)
    """
    given = {normalize_key(k): v for k, v in (flags or {}).items() if v is not None}
    checked = {k: validate(k, v) for k, v in given.items()}
    from_file = load_config(config) if config is not None else {}
    name = preset or checked.get("preset") or from_file.get("preset")
    values: dict[str, Any] = {}
    if name:
        values.update(preset_values(name))
    values.update(from_file)
    if name:
        values["preset"] = name
    values.update(checked)
    return Settings(**values)
