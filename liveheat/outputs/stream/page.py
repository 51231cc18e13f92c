"""The stream page: a real HTML file shipped in the package, filled with the setting choices."""

from __future__ import annotations

import functools
import json
from importlib import resources


@functools.cache
def _html() -> str:
    return resources.files("liveheat.outputs.stream").joinpath("page.html").read_text("utf-8")


def _choices() -> dict[str, list]:
    from liveheat.settings.config import _colormaps
    from liveheat.settings.fields import METHODS_FIXED, MODES, NORMS

    return {
        "method": list(METHODS_FIXED),
        "colormap": _colormaps(),
        "mode": list(MODES),
        "norm": list(NORMS),
    }


def page(controls: bool) -> str:
    """The page, with the choices of every closed setting and whether controls show."""
    cfg = json.dumps({"choices": _choices(), "controls": controls})
    return _html().replace("/*CONFIG*/", cfg)
