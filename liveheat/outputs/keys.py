"""The one key table and the Controls that turn key presses into setting changes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from liveheat.draw.hud import draw_centered
from liveheat.settings.fields import METHODS_FIXED, Settings, validate

# ---------------------------------------------------------------------------------- keys & HUD


@dataclass(frozen=True)
class Key:
    """One row of the key table: the key codes (cv2.waitKey values), a label, help, action."""

    keys: tuple[int, ...]
    label: str
    help: str
    action: str


#: the one key table: Controls dispatches on it and the help overlay is drawn from it
KEYS: list[Key] = [
    Key((ord("q"), 27), "q / Esc", "quit", "quit"),
    Key((ord(" "),), "space", "pause / resume", "pause"),
    Key((ord("m"),), "m", "next method", "method"),
    Key((ord("c"),), "c", "next colormap", "colormap"),
    Key((ord("["),), "[", "previous channel (channel:K) or class", "previous"),
    Key((ord("]"),), "]", "next channel (channel:K) or class", "next"),
    Key((ord("+"), ord("=")), "+", "stronger heatmap (alpha up)", "alpha_up"),
    Key((ord("-"), ord("_")), "-", "weaker heatmap (alpha down)", "alpha_down"),
    Key((ord("p"),), "p", "panels: original | heatmap | overlay", "panels"),
    Key((ord("s"),), "s", "save a PNG screenshot", "screenshot"),
    Key((ord("h"),), "h", "show / hide this help", "help"),
]
_BY_CODE = {code: k.action for k in KEYS for code in k.keys}

#: colormaps the 'c' key cycles through (a short list of good ones, not all of OpenCV's)
COLORMAP_CYCLE = ("jet", "turbo", "inferno", "viridis", "magma", "plasma", "hot", "cividis")
#: methods the 'm' key cycles through; channel:K then walks channels with [ and ]
METHOD_CYCLE = (*METHODS_FIXED, "channel:0")
ALPHA_STEP = 0.1


def help_lines() -> list[str]:
    """The help overlay text, generated from KEYS.

    Examples:
        >>> help_lines()[1]
        'q / Esc  quit'
    """
    width = max(len(k.label) for k in KEYS)
    return ["keys"] + [f"{k.label:<{width}}  {k.help}" for k in KEYS]


def _n_classes(features: Any) -> int | None:
    labels = getattr(features, "labels", None)
    if labels:
        return len(labels)
    logits = getattr(features, "logits", None)
    if logits is not None:
        return int(np.asarray(logits).size)
    return None


def _top1(features: Any) -> int | None:
    top = getattr(features, "top", None)
    if callable(top):
        try:
            return int(top(1)[0][0])
        except Exception:  # noqa: BLE001 - a HUD key must never crash the run
            return None
    return None


class Controls:
    """Turn key codes into changes of a `Settings` object (the one table: KEYS).

    `handle(key)` mutates the settings (method/colormap cycling, alpha, panels, paused,
    target/channel via [ and ]) and returns an event for the caller: "quit", "screenshot",
    "help" or None. `.message` holds a short note about the last change (for a toast).

    Args:
        settings: the `Settings` the keys change (shared, not copied).
        methods: the methods the method key cycles through.
        colormaps: the colormaps the colormap key cycles through.

    Raises:
        SettingError: a method or colormap in `methods` / `colormaps` that the settings'
            rules refuse.

    Examples:
        >>> s = Settings()
        >>> c = Controls(s)
        >>> c.handle(ord("c")), s.colormap
        (None, 'turbo')
        >>> c.handle(ord("+")), s.alpha
        (None, 0.6)
        >>> c.handle(ord("q"))
        'quit'
    """

    def __init__(
        self,
        settings: Settings,
        *,
        methods: tuple[str, ...] = METHOD_CYCLE,
        colormaps: tuple[str, ...] = COLORMAP_CYCLE,
    ) -> None:
        self.settings = settings
        # checked now by the settings' rules, so a key never sets a value update() refuses
        self.methods = tuple(
            validate("method", m, where="in Controls(methods=...)") for m in methods
        )
        self.colormaps = tuple(
            validate("colormap", c, where="in Controls(colormaps=...)") for c in colormaps
        )
        self.features: Any = None  # the newest Features (set by the pipeline) for [ and ] wrap
        self.message = ""
        self.message_time = 0.0

    def say(self, text: str) -> None:
        """Show `text` as a toast (a window draws `.message` for a moment); thread-safe enough:
        two plain attribute writes."""
        self.message = text
        self.message_time = time.monotonic()

    @staticmethod
    def _cycle(values: tuple[str, ...], current: str, step: int = 1) -> str:
        if current in values:
            return values[(values.index(current) + step) % len(values)]
        return values[0]

    def handle(self, key: int, *, features: Any = None) -> str | None:
        """Apply one key code (as cv2.waitKey returns it); unknown keys do nothing."""
        if key is None or key < 0:
            return None
        if 65 <= key <= 90:  # caps lock / shift: same as the lower-case key
            key += 32
        action = _BY_CODE.get(key)
        if action is None:
            return None
        s = self.settings
        features = features if features is not None else self.features
        if action in ("quit", "screenshot", "help"):
            return action
        if action == "pause":
            s.update(paused=not s.paused)
            self.say("paused" if s.paused else "resumed")
        elif action == "method":
            current = "channel:0" if str(s.method).startswith("channel:") else s.method
            method = self._cycle(self.methods, current)
            s.update(method=method)
            self.say(f"method: {method}")
        elif action == "colormap":
            cmap = self._cycle(self.colormaps, str(s.colormap).lower())
            s.update(colormap=cmap)
            self.say(f"colormap: {cmap}")
        elif action in ("alpha_up", "alpha_down"):
            step = ALPHA_STEP if action == "alpha_up" else -ALPHA_STEP
            alpha = round(min(1.0, max(0.0, float(s.alpha) + step)), 2)
            s.update(alpha=alpha)
            self.say(f"alpha: {alpha:.1f}")
        elif action == "panels":
            s.update(panels=not s.panels)
            self.say("panels on" if s.panels else "panels off")
        elif action in ("previous", "next"):
            self._step_target(-1 if action == "previous" else 1, features)
        return None

    def _step_target(self, step: int, features: Any) -> None:
        s = self.settings
        method = str(s.method)
        if method.startswith("channel:"):
            try:
                k = int(method.split(":", 1)[1])
            except ValueError:
                k = 0
            maps = getattr(features, "maps", None)
            n = int(np.shape(maps)[0]) if maps is not None and np.ndim(maps) == 3 else None
            k = (k + step) % n if n else max(0, k + step)
            s.update(method=f"channel:{k}")
            self.say(f"method: channel:{k}")
            return
        n = _n_classes(features)
        current = s.target
        if isinstance(current, str) and not current.strip().lstrip("-").isdigit():
            labels = list(getattr(features, "labels", None) or [])
            current = labels.index(current) if current in labels else None
        if current is None:
            current = _top1(features)
        base = int(current) if current is not None else (0 if step > 0 else 1)
        target = (base + step) % n if n else max(0, base + step)
        s.update(target=target)
        labels = getattr(features, "labels", None)
        name = f" ({labels[target]})" if labels and 0 <= target < len(labels) else ""
        self.say(f"target: class {target}{name}")


def draw_help(image: np.ndarray) -> np.ndarray:
    """Draw the key table (from KEYS) centred on a dark box, in place.

    Examples:
        >>> import numpy as np
        >>> img = np.full((480, 640, 3), 255, np.uint8)
        >>> int(draw_help(img)[240, 320].min()) < 255
        True
    """
    return draw_centered(image, help_lines())
