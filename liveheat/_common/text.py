"""Message helpers: did-you-mean and first lines of errors."""

from __future__ import annotations

import difflib


def _close(name: str, names, n: int = 5) -> str:
    near = difflib.get_close_matches(name, list(names), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(repr(x) for x in near)}?" if near else ";"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg if len(msg) < 300 else msg[:300] + "..."
