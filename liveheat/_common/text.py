"""Message helpers: one did-you-mean, and the first line of an error."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

_MAX_WORD = 200  # longer words are cut before matching: difflib is quadratic in the length


def did_you_mean(word: object, choices: Iterable[object], *, n: int = 3, before: str = "") -> str:
    """`before` + "did you mean 'x'?" naming the choices closest to `word`, or "" if none is.

    Case-insensitive (the choices come back as spelt); swapped letters ("cma" for "cam") count
    as close. `before` joins it to the message only when there is a hint:
    ``f"unknown layer {w!r};{did_you_mean(w, names, before=' ')} valid: ..."`` or, at the end,
    ``f"expected one of {...}{did_you_mean(w, names, before='; ')}"``.

    Examples:
        >>> did_you_mean("jt", ["jet", "hot", "turbo"])
        "did you mean 'jet'?"
        >>> did_you_mean("cma", ["cam", "eigen"])
        "did you mean 'cam'?"
        >>> did_you_mean("xyz", ["jet"], before="; ")
        ''
    """
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(str(c).lower(), str(c))
    text = str(word).lower()[:_MAX_WORD]
    swapped = [c for low, c in by_lower.items() if low != text and sorted(low) == sorted(text)]
    close = swapped or [
        by_lower[m] for m in difflib.get_close_matches(text, list(by_lower), n=n, cutoff=0.6)
    ]
    if not close:
        return ""
    return f"{before}did you mean {' or '.join(repr(c) for c in close[:n])}?"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg if len(msg) < 300 else msg[:300] + "..."
