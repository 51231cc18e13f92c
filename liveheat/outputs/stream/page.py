"""The stream page: a real HTML file shipped in the package, filled with the setting choices."""

from __future__ import annotations

import functools
import json
from importlib import resources


@functools.cache
def _html() -> str:
    return resources.files("liveheat.outputs.stream").joinpath("page.html").read_text("utf-8")


def fields() -> list[dict]:
    """One control per live setting, from its spec: a menu for a closed vocabulary, a slider
    for a bounded number, a box for true/false, a text field for the rest (target, vmin).

    Examples:
        >>> [f["kind"] for f in fields() if f["key"] in ("method", "alpha", "panels")]
        ['select', 'range', 'checkbox']
    """
    from liveheat.settings.fields import METHODS_FIXED, SPECS

    out = []
    for key, spec in SPECS.items():
        if not spec.live:
            continue
        f: dict = {"key": key, "help": spec.help}
        choices = list(METHODS_FIXED) if key == "method" else list(spec.choice_list())
        if choices:
            f.update(kind="select", choices=choices)
        elif bool in spec.types:
            f.update(kind="checkbox")
        elif float in spec.types and spec.range and "inf" not in spec.range:
            lo, hi = (float(x) for x in spec.range[1:-1].split(","))
            f.update(kind="range", min=lo, max=hi, step=(hi - lo) / 20)
        else:
            f.update(kind="text")
        out.append(f)
    return out


def page(controls: bool) -> str:
    """The page, with one control per live setting and whether controls show."""
    cfg = json.dumps({"fields": fields(), "controls": controls})
    return _html().replace("/*CONFIG*/", cfg)
