"""Command-line flags built from the settings specs: spelling, help, default and rule of each.

A flag's value is checked by `validate` as argparse reads it, so `--alpha 2` says what a
config file's `alpha = 2` says. Every setting flag defaults to None ("not given") unless asked
otherwise, so a preset or a config file's value stays unless the flag is typed.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterable
from typing import Any

from liveheat.errors import LiveheatError
from liveheat.settings.fields import SPECS, SettingError, Spec, validate


def flag_value(name: str, text: str) -> Any:
    """A flag's text as the value the setting `name` takes, checked (LiveheatError if bad).

    Numbers are read as a config file would read them (``2`` an integer, ``2.5`` a number),
    so a bad one is reported with the same words; text that is no number is checked as text.

    Examples:
        >>> flag_value("alpha", "1")
        1.0
        >>> flag_value("every", "1.5")
        Traceback (most recent call last):
        ...
        liveheat.errors.LiveheatError: every = 1.5 from --every: expected an integer
    """
    spec = SPECS[name]
    value: Any = text
    if str not in spec.types and text.isascii():
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                pass
    try:
        return validate(name, value, where=f"from {spec.flag_name}")
    except SettingError as e:  # not a ValueError here: argparse would replace the message
        raise LiveheatError(str(e)) from None


def _reader(name: str) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        return flag_value(name, text)

    read.__name__ = name
    return read


def _help(spec: Spec, default: Any) -> str:
    text = spec.help
    if spec.range is not None:
        text += f", {spec.wanted()}"
    if spec.default_text and default is None:
        text += f" (default: {spec.default_text})"
    elif default is not None and not isinstance(default, bool):
        text += f" (default: {default})"
    return text.replace("%", "%%")  # argparse %-formats help


def add_setting_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    names: Iterable[str],
    *,
    defaults: bool = False,
    **overrides: dict[str, Any],
) -> None:
    """Add one flag per setting in `names` to `parser` (or an argument group), from its spec.

    Each flag stores into the setting's own name (``--no-show`` stores ``show = False``) and
    defaults to None = not given; with `defaults` it defaults to the setting's default
    instead (for a command that has no config or preset to layer). Closed vocabularies known
    without importing OpenCV become argparse `choices`. `overrides` maps a setting name to
    extra `add_argument` keywords (e.g. another default).

    Examples:
        >>> p = argparse.ArgumentParser()
        >>> add_setting_flags(p, ["alpha", "show", "mode"])
        >>> vars(p.parse_args(["--alpha", "1", "--no-show", "--mode", "MASK"]))
        {'alpha': 1.0, 'show': False, 'mode': 'mask'}
        >>> vars(p.parse_args([]))
        {'alpha': None, 'show': None, 'mode': None}
    """
    for name in names:
        spec = SPECS[name]
        flag = spec.flag_name
        if flag is None:
            raise ValueError(f"setting {name!r} has no command-line flag")
        extra = dict(overrides.get(name, {}))
        default = extra.pop("default", spec.default if defaults else None)
        kw: dict[str, Any] = {"dest": name, "default": default}
        if bool in spec.types:
            kw.update(action="store_const", const=not spec.default)
        else:
            kw["type"] = _reader(name)
            if isinstance(spec.choices, tuple) and spec.pattern is None:
                kw["choices"] = spec.choices
            if spec.metavar:
                kw["metavar"] = spec.metavar
        shown = default if default is not None else spec.default
        kw["help"] = _help(spec, shown)
        kw.update(extra)
        flags = (spec.short, flag) if spec.short else (flag,)
        action = parser.add_argument(*flags, **kw)
        if spec.choices is not None and "choices" not in kw:  # colormaps, methods: words the
            # shell completes (argcomplete) though the flag also takes other spellings
            action.completer = functools.partial(_complete, spec)  # type: ignore[attr-defined]


def _complete(spec: Spec, **_: Any) -> list[str]:
    return list(spec.choice_list())


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings flags in parsed `args`, by setting name (None = not given).

    Examples:
        >>> p = argparse.ArgumentParser()
        >>> add_setting_flags(p, ["every", "hud"])
        >>> given_settings(p.parse_args(["--every", "3"]))
        {'hud': None, 'every': 3}
    """
    return {k: getattr(args, k) for k in SPECS if hasattr(args, k)}
