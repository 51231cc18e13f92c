"""An OpenCV window output: shows frames, reads keys, draws help and notes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveheat.draw.hud import _text_box, _text_scale
from liveheat.errors import LiveheatError
from liveheat.outputs.base import OutputBase
from liveheat.outputs.display import display_available
from liveheat.outputs.keys import Controls, draw_help
from liveheat.outputs.video import _bgr_u8
from liveheat.settings.fields import Settings

# -------------------------------------------------------------------------------------- window


class Window(OutputBase):
    """An OpenCV window with keyboard controls (KEYS), a help overlay ('h') and screenshots ('s').

    `write(image, frame)` shows the image and handles keys (cv2.waitKey(1)); `.stop_requested`
    turns True on q/Esc or when the window is closed. While paused, call `poll()` so that keys
    (space to resume) still work. Raises LiveheatError when no display is available (checked
    with `display_available()` first, so a missing display never aborts the process). The
    window is resizable (aspect kept) and sized to each new image size, scaled down to fit
    `max_size` (W, H), so three panels side by side still fit the screen.

    Args:
        settings: the `Settings` the keys change (shared, not copied).
        title: the window's title (also its OpenCV name).
        controls: the `Controls` that turn keys into setting changes; default: new ones
            on `settings`.
        screenshot_dir: the folder the 's' key saves screenshots in.
        max_size: the largest (W, H) the window opens at; a larger image is scaled down.

    Raises:
        LiveheatError: no display is available (no $DISPLAY or Wayland, or an OpenCV built
            without a GUI backend); the message suggests ``--no-show``.

    Examples:
        >>> win = Window(Settings(), title="liveheat")          # doctest: +SKIP
        >>> win.write(frame_image); win.stop_requested           # doctest: +SKIP
        False
    """

    TOAST_S = 1.5

    def __init__(
        self,
        settings: Settings,
        *,
        title: str = "liveheat",
        controls: Controls | None = None,
        screenshot_dir: str | os.PathLike = ".",
        max_size: tuple[int, int] = (1600, 900),
    ) -> None:
        ok, why = display_available()
        if not ok:
            raise LiveheatError(
                f"cannot open a window: {why}; run with --no-show (and -o out.mp4) instead"
            )
        self.settings = settings
        self.title = title
        self.controls = controls if controls is not None else Controls(settings)
        self.screenshot_dir = Path(screenshot_dir)
        self.screenshots: list[Path] = []
        self.stop_requested = False
        self.show_help = False
        self.frames_shown = 0
        self._last: np.ndarray | None = None
        self._perf: str | None = None
        self._closed = False
        self.max_size = (int(max_size[0]), int(max_size[1]))
        self._shape: tuple[int, int] | None = None
        # resizable, aspect kept; sized to the image (scaled down to fit max_size, e.g. panels)
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)

    def write(self, image: np.ndarray, frame: Any = None, annotation: Any = None) -> None:
        """Show one image (with help/toast/pause overlays) and handle pending keys; the
        annotation's features let `[` and `]` step through classes."""
        if self._closed:
            return
        features = getattr(annotation, "features", None)
        if features is not None:
            self.controls.features = features
        self._perf = getattr(annotation, "perf", None)  # the HUD line a file leaves out
        self._last = _bgr_u8(image)
        self._show()
        self.frames_shown += 1
        self._keys(1)

    def poll(self, delay_ms: int = 30) -> None:
        """Handle keys (and redraw the last image) without a new frame, e.g. while paused."""
        if self._closed:
            return
        if self._last is not None:
            self._show()
        self._keys(max(1, int(delay_ms)))

    def _show(self) -> None:
        assert self._last is not None
        shown = self._last
        h, w = shown.shape[:2]
        fit = min(1.0, self.max_size[0] / w, self.max_size[1] / h)
        if fit < 1.0:  # scale down here (not in the window) so overlays are drawn legibly
            size = (max(1, round(w * fit)), max(1, round(h * fit)))
            shown = cv2.resize(shown, size, interpolation=cv2.INTER_AREA)
        toast = self.controls.message and (
            time.monotonic() - self.controls.message_time < self.TOAST_S
        )
        perf = self._perf
        if self.show_help or toast or self.settings.paused or perf:
            shown = shown.copy() if shown is self._last else shown
            scale, thick = _text_scale(shown)
            notes = [perf] if perf else []
            if self.settings.paused:
                notes.append("PAUSED (space)")
            if toast:
                notes.append(self.controls.message)
            if notes:
                h = shown.shape[0]
                y = max(0, h - int(40 * scale) * len(notes) - 8)
                _text_box(shown, notes, (0, y), scale=scale, thickness=thick, color=(0, 255, 255))
            if self.show_help:
                draw_help(shown)
        h, w = shown.shape[:2]
        if self._shape != (h, w):  # first frame, or panels toggled: fit the window to it
            self._shape = (h, w)
            cv2.resizeWindow(self.title, w, h)
        cv2.imshow(self.title, shown)

    def _keys(self, delay_ms: int) -> None:
        key = cv2.waitKey(delay_ms)
        if key != -1:
            self.handle_key(key)
        try:
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
        except cv2.error:
            visible = 0
        if visible < 1:  # closed with the mouse
            self.stop_requested = True

    def handle_key(self, key: int) -> str | None:
        """Apply one key code as if it were pressed in the window; returns the Controls event."""
        event = self.controls.handle(key)
        if event == "quit":
            self.stop_requested = True
        elif event == "help":
            self.show_help = not self.show_help
        elif event == "screenshot":
            self.screenshot()
        return event

    def screenshot(self) -> Path | None:
        """Save the last shown image (without overlays) as a PNG in screenshot_dir."""
        if self._last is None:
            return None
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.screenshot_dir / f"liveheat-{stamp}-{len(self.screenshots) + 1:03d}.png"
        if not cv2.imwrite(str(path), self._last):
            self.controls.say(f"could not save {path}")
            return None
        self.screenshots.append(path)
        self.controls.say(f"saved {path.name}")
        return path

    def notify(self, text: str) -> None:
        """Show a note as a toast over the picture."""
        self.controls.say(text)

    def close(self) -> None:
        """Close the window (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
