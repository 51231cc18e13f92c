"""Where annotated frames go: a video file (VideoSink) or a window with keys, HUD and help (Window).

Every output has `write(image, frame)` and an idempotent `close()`; KEYS is the one key table.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from liveheat.errors import LiveheatError
from liveheat.settings import METHODS_FIXED, Settings

__all__ = [
    "CODECS",
    "KEYS",
    "Controls",
    "Key",
    "VideoSink",
    "Window",
    "display_available",
    "draw_help",
    "draw_hud",
    "help_lines",
]

# ------------------------------------------------------------------------------------ video file

#: fourcc chain per extension, tried in order until cv2.VideoWriter opens (no H.264 in the wheel)
CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("mp4v", "avc1"),
    ".m4v": ("mp4v", "avc1"),
    ".mov": ("mp4v", "MJPG"),
    ".avi": ("MJPG", "XVID", "mp4v"),
    ".webm": ("VP80", "VP90"),
    ".mkv": ("mp4v", "XVID", "MJPG", "VP80"),
}


def _bgr_u8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise LiveheatError(
            f"cannot write an image of dtype {image.dtype} and shape {image.shape}; "
            "expected a uint8 BGR frame (H x W x 3)"
        )
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] != 3:
        raise LiveheatError(f"cannot write an image with {image.shape[2]} channels; expected 3")
    return image


class VideoSink:
    """Write frames to a video file with cv2.VideoWriter; a context manager that always finalises.

    The codec comes from the extension (`CODECS`: .mp4/.m4v mp4v, .mov, .avi MJPG then XVID,
    .webm VP80 then VP90, .mkv), trying each until the writer opens. `fps` is passed on as a float,
    unrounded (30000/1001 stays 29.97...). `size` (W, H) defaults to the first frame's size; a
    frame of another size (e.g. panels toggled on) is letterboxed into it (scaled to fit, aspect
    kept, black bars) and counted in `.resized`. A bad path or extension or no working codec raises
    LiveheatError before any frame.

    Frames go to a temporary file beside the target (`.NAME.<pid>.tmp.EXT`, `.tmp_path`), which
    `close()` renames onto `path` once at least one frame was written: a run that fails before
    its first frame leaves an existing file untouched, and an interrupted one still ends with a
    finalised file at `path`. A sink closed with no frame written removes its temporary file.

    `by_timestamp=True` (live sources) places each frame by its `frame.timestamp` instead of
    one after the other: the last image is repeated until round((t - t0) * fps) frames are
    written, so a camera that delivers fewer frames than its fps (or a run that drops some)
    still gives a file that plays at wall-clock speed (`.repeated` counts the copies; a frame
    more than one slot early is left out, counted in `.skipped`). A gap longer than `max_gap`
    seconds (a pause, a stream reconnecting) restarts the clock instead of filling it.

    Examples:
        >>> import numpy as np
        >>> with VideoSink("/tmp/liveheat-doc.avi", fps=30000 / 1001) as sink:
        ...     for _ in range(3):
        ...         sink.write(np.zeros((120, 160, 3), np.uint8))
        >>> sink.frames_written, sink.fourcc, sink.size
        (3, 'MJPG', (160, 120))
    """

    #: a recorder: the runner gives it every frame once, never the repeats of a paused picture
    records = True

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float,
        size: tuple[int, int] | None = None,
        fourcc: str | None = None,
        by_timestamp: bool = False,
        max_gap: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.by_timestamp = bool(by_timestamp)
        self.max_gap = float(max_gap)
        self.repeated = 0  # by_timestamp: copies of the previous image written to fill time
        self.skipped = 0  # by_timestamp: frames that came more than one slot early
        self._t0: float | None = None
        self._prev: np.ndarray | None = None
        ext = self.path.suffix.lower()
        if fourcc is not None:
            if len(fourcc) != 4:
                raise LiveheatError(f"fourcc must be 4 characters (e.g. 'mp4v'), got {fourcc!r}")
            self.codecs: tuple[str, ...] = (fourcc,)
        elif ext in CODECS:
            self.codecs = CODECS[ext]
        else:
            raise LiveheatError(
                f"cannot write video '{self.path}': unsupported extension '{ext or '(none)'}'; "
                f"use one of {', '.join(CODECS)}"
            )
        try:
            fps_f = float(fps)
        except (TypeError, ValueError):
            fps_f = float("nan")
        if not (0 < fps_f <= 1000):
            raise LiveheatError(
                f"cannot write video at fps={fps!r}; expected a number in (0, 1000]"
            )
        self.fps = fps_f
        if self.path.is_dir():
            raise LiveheatError(
                f"cannot write video '{self.path}': it is a folder; give a file name"
            )
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise LiveheatError(
                f"cannot write video '{self.path}': folder '{parent}' does not exist; create it "
                "or choose another path"
            )
        if not os.access(parent, os.W_OK) or (
            self.path.exists() and not os.access(self.path, os.W_OK)
        ):
            raise LiveheatError(
                f"cannot write video '{self.path}': permission denied; choose a writable path"
            )
        base = self.path.name[: len(self.path.name) - len(self.path.suffix)]
        #: where frames are written until close() renames the file onto `path`
        self.tmp_path = self.path.with_name(f".{base}.{os.getpid()}.tmp{self.path.suffix}")
        self.size: tuple[int, int] | None = None
        self.fourcc: str | None = None
        self.frames_written = 0
        self.resized = 0
        self._writer: cv2.VideoWriter | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._canvas: np.ndarray | None = None
        if size is not None:
            w, h = (int(v) for v in size)
            if w <= 0 or h <= 0:
                raise LiveheatError(f"video size must be positive (W, H), got {size!r}")
            self._open((w, h))
        else:
            self._probe()

    def _try_open(self, size: tuple[int, int]) -> tuple[cv2.VideoWriter, str] | None:
        for code in self.codecs:
            writer = cv2.VideoWriter(
                str(self.tmp_path), cv2.VideoWriter_fourcc(*code), self.fps, size, True
            )
            if writer.isOpened():
                return writer, code
            writer.release()
        return None

    def _no_codec(self) -> LiveheatError:
        self._remove_file()
        alt = ".avi (MJPG)" if self.path.suffix.lower() != ".avi" else ".mp4 (mp4v)"
        return LiveheatError(
            f"cannot write video '{self.path}': no working codec (tried "
            f"{', '.join(self.codecs)}); try another extension such as {alt}"
        )

    def _probe(self) -> None:
        """No size yet: check now (before any frame) that some codec opens, then wait."""
        opened = self._try_open((64, 64))
        if opened is None:
            raise self._no_codec()
        opened[0].release()
        self.fourcc = opened[1]
        self.codecs = (opened[1],) + tuple(c for c in self.codecs if c != opened[1])
        self._remove_file()

    def _open(self, size: tuple[int, int]) -> None:
        opened = self._try_open(size)
        if opened is None:
            raise self._no_codec()
        self._writer, self.fourcc = opened
        self.size = size

    def _remove_file(self) -> None:
        """Remove the temporary file (never the target: an old file there stays intact)."""
        try:
            if self.tmp_path.is_file():
                self.tmp_path.unlink()
        except OSError:
            pass

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """Letterbox `image` into self.size (scale to fit, keep aspect, black bars)."""
        w, h = self.size  # type: ignore[misc]
        ih, iw = image.shape[:2]
        scale = min(w / iw, h / ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        if self._canvas is None:
            self._canvas = np.zeros((h, w, 3), np.uint8)
        canvas = self._canvas
        canvas[:] = 0
        x, y = (w - nw) // 2, (h - nh) // 2
        canvas[y : y + nh, x : x + nw] = cv2.resize(image, (nw, nh), interpolation=interp)
        return canvas

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        """Append one image (uint8 BGR; gray and BGRA are converted). `frame` (its
        `.timestamp`) is used only with `by_timestamp`.

        Examples:
            >>> sink = VideoSink("/tmp/liveheat-doc.mp4", fps=25)
            >>> sink.write(np.zeros((90, 160, 3), np.uint8)); sink.close(); sink.frames_written
            1
        """
        image = _bgr_u8(image)
        with self._lock:
            if self._closed:
                raise LiveheatError(f"video '{self.path}' is already closed; open a new VideoSink")
            if self._writer is None:
                self._open((image.shape[1], image.shape[0]))
            if (image.shape[1], image.shape[0]) != self.size:
                image = self._fit(image)
                self.resized += 1
            assert self._writer is not None
            image = np.ascontiguousarray(image)
            t = getattr(frame, "timestamp", None) if self.by_timestamp else None
            if t is not None and not self._catch_up(float(t)):
                self.skipped += 1
                return
            self._writer.write(image)
            self.frames_written += 1
            if t is not None:
                if self._prev is None:
                    self._prev = np.empty_like(image)
                np.copyto(self._prev, image)  # (the letterbox canvas is reused)

    def _catch_up(self, t: float) -> bool:
        """by_timestamp: repeat the last image up to the slot of time `t`; False when the
        frame is more than one slot early (leave it out)."""
        if self._t0 is None:
            self._t0 = t
        behind = round((t - self._t0) * self.fps) - self.frames_written
        if abs(behind) > self.max_gap * self.fps or self._prev is None:  # long gap: new clock
            self._t0 = t - self.frames_written / self.fps
            behind = 0
        if behind < -1:
            return False
        assert self._writer is not None
        for _ in range(behind):
            self._writer.write(self._prev)
            self.frames_written += 1
            self.repeated += 1
        return True

    def close(self) -> None:
        """Finalise the file so it plays and move it to `path` (idempotent); with no frame
        written, remove the temporary file and leave `path` as it was."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.release()
            if self.frames_written == 0:
                self._remove_file()
                return
            try:
                os.replace(self.tmp_path, self.path)
            except OSError as e:
                raise LiveheatError(
                    f"cannot write video '{self.path}': {e.strerror or e}; the frames are in "
                    f"'{self.tmp_path}'"
                ) from None

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<VideoSink '{self.path}' {self.fourcc} {self.size} fps={self.fps} "
            f"frames={self.frames_written}>"
        )


# --------------------------------------------------------------------------------- display check


def _gui_backend() -> str:
    """OpenCV's GUI backend from its build information: 'QT5', 'GTK3', 'WIN32UI', 'NONE', ..."""
    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip() == "GUI":
            return value.strip().split()[0].upper() if value.strip() else "NONE"
    return "NONE"


def _x_display_opens(display: str, timeout: float = 2.0) -> bool | None:
    """True/False if libX11 can (not) connect to `display`; None if libX11 is not available."""
    name = ctypes.util.find_library("X11")
    if not name:
        return None
    try:
        x11 = ctypes.CDLL(name)
    except OSError:
        return None
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    result: list[bool] = []

    def attempt() -> None:
        handle = x11.XOpenDisplay(display.encode())
        if handle:
            x11.XCloseDisplay(handle)
        result.append(bool(handle))

    thread = threading.Thread(target=attempt, daemon=True)  # a remote host may not answer
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


_probe_cache: dict[tuple, tuple[bool, str]] = {}
_PROBE = (
    "import cv2, numpy as np\n"
    "cv2.namedWindow('liveheat-probe', cv2.WINDOW_AUTOSIZE)\n"
    "cv2.imshow('liveheat-probe', np.zeros((8, 8, 3), np.uint8))\n"
    "cv2.waitKey(1)\n"
    "cv2.destroyAllWindows()\n"
)


def _probe_window(key: tuple, timeout: float = 15.0) -> tuple[bool, str]:
    """Open and close a tiny window in a child process (an abort there cannot take us down)."""
    if key in _probe_cache:
        return _probe_cache[key]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        ok = proc.returncode == 0
        lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else f"exit status {proc.returncode}"
    except subprocess.TimeoutExpired:
        ok, why = False, f"opening a test window took over {timeout:g} s"
    except OSError as e:
        ok, why = False, str(e)
    result = (ok, "") if ok else (False, why)
    _probe_cache[key] = result
    return result


def display_available(*, probe: bool = True) -> tuple[bool, str]:
    """Whether a window can be shown, and why not, without ever calling cv2.imshow here.

    Checks that OpenCV has a GUI backend, that DISPLAY / WAYLAND_DISPLAY is set, that the X server
    accepts a connection (libX11 XOpenDisplay), and with `probe` that a child process can open a
    window (cached per display). Returns `(ok, reason)`; `reason` is one line either way.

    Examples:
        >>> ok, reason = display_available()
        >>> ok, reason                                     # doctest: +SKIP
        (False, 'no display (DISPLAY is not set)')
    """
    gui = _gui_backend()
    if gui in ("NONE", "NO", ""):
        return False, (
            "OpenCV has no GUI backend (a headless build); install opencv-python instead of "
            "opencv-python-headless"
        )
    if sys.platform in ("win32", "darwin"):
        return True, f"{gui} windows"
    display = os.environ.get("DISPLAY", "")
    wayland = os.environ.get("WAYLAND_DISPLAY", "")
    if not display and not wayland:
        return False, "no display (DISPLAY is not set)"
    if not display:
        if gui.startswith("QT"):
            return False, (
                f"Wayland display {wayland!r} but DISPLAY is not set; OpenCV's Qt windows need "
                "X11 (XWayland): set DISPLAY"
            )
        where = f"Wayland display {wayland!r}"
    else:
        opens = _x_display_opens(display)
        if opens is False:
            return False, (
                f"cannot connect to display {display!r} (X server not running or access denied)"
            )
        where = f"display {display!r}"
    if probe:
        ok, why = _probe_window((gui, display, wayland, os.environ.get("XAUTHORITY")))
        if not ok:
            return False, f"OpenCV cannot open a window on {where}: {why}"
    return True, f"{where} ({gui})"


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
        self.methods = tuple(methods)
        self.colormaps = tuple(colormaps)
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


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    # sized by the larger of the height and the 16:9 height of the width, so that a wide
    # panels image (three frames side by side), shown scaled down to fit the screen, still
    # has readable text: 0.6 at 720p, 0.9 at 1080p, ~1.6 on 3 x 1280 x 720 panels
    h, w = image.shape[:2]
    scale = min(2.0, max(0.45, max(h, w * 9 / 16) / 1200))
    return scale, 1 if scale < 0.75 else 2


def _text_box(
    image: np.ndarray,
    lines: list[str],
    origin: tuple[int, int],
    *,
    scale: float,
    thickness: int,
    color: tuple[int, int, int] = (255, 255, 255),
    center: bool = False,
) -> None:
    """Draw lines of text on a darkened box (in place); origin is the box's top-left corner."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    H, W = image.shape[:2]
    for _ in range(3):  # shrink the text until the box fits the image (e.g. help on panels)
        sizes = [cv2.getTextSize(t, font, scale, thickness) for t in lines]
        line_h = max(s[0][1] + s[1] for s in sizes) + max(4, int(8 * scale))
        pad = max(4, int(8 * scale))
        box_w = max(s[0][0] for s in sizes) + 2 * pad
        box_h = line_h * len(lines) + pad
        fit = min(1.0, H / box_h, W / box_w)
        if fit >= 1.0 or scale <= 0.3:
            break
        scale = max(0.3, scale * fit * 0.97)
        thickness = 1 if scale < 0.75 else thickness
    x0, y0 = origin
    if center:
        x0, y0 = (W - box_w) // 2, (H - box_h) // 2
    x0, y0 = max(0, min(x0, W - 1)), max(0, min(y0, H - 1))
    x1, y1 = min(W, x0 + box_w), min(H, y0 + box_h)
    roi = image[y0:y1, x0:x1]
    np.right_shift(roi, 2, out=roi)  # a dark backing box (a quarter of the brightness)
    for i, text in enumerate(lines):
        (_, th), _base = sizes[i]
        y = y0 + pad + i * line_h + th
        cv2.putText(image, text, (x0 + pad, y), font, scale, color, thickness, cv2.LINE_AA)


def draw_hud(
    image: np.ndarray,
    lines: list[str],
    *,
    colorbar: tuple[str, float, float] | None = None,
) -> np.ndarray:
    """Draw HUD text (top-left, on a dark box) and an optional colour bar (right edge), in place.

    `colorbar` is (colormap, vmin, vmax): the bar uses that colormap, labelled with the values.

    Examples:
        >>> img = np.full((360, 640, 3), 200, np.uint8)
        >>> out = draw_hud(img, ["cam  top: 281 tabby 0.53"], colorbar=("jet", 0.0, 1.0))
        >>> out is img, int(img[5, 5, 0]) < 200
        (True, True)
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise LiveheatError(f"draw_hud needs a uint8 BGR image, got {image.dtype} {image.shape}")
    scale, thickness = _text_scale(image)
    if lines:
        _text_box(image, [str(t) for t in lines], (0, 0), scale=scale, thickness=thickness)
    if colorbar is not None:
        from liveheat.overlay import colorbar as make_bar

        cmap, vmin, vmax = colorbar
        H, W = image.shape[:2]
        bar_h = max(32, H // 2)
        try:
            bar = make_bar(bar_h, colormap=cmap, vmin=vmin, vmax=vmax)
        except ValueError as e:
            raise LiveheatError(str(e)) from None
        bh, bw = bar.shape[:2]
        bw = min(bw, W)
        x0, y0 = W - bw, max(0, (H - bh) // 2)
        image[y0 : y0 + bh, x0 : x0 + bw] = bar[: H - y0, :bw]
    return image


def draw_help(image: np.ndarray) -> np.ndarray:
    """Draw the key table (from KEYS) centred on a dark box, in place.

    Examples:
        >>> img = np.full((480, 640, 3), 255, np.uint8)
        >>> int(draw_help(img)[240, 320].min()) < 255
        True
    """
    scale, thickness = _text_scale(image)
    _text_box(image, help_lines(), (0, 0), scale=scale, thickness=thickness, center=True)
    return image


# -------------------------------------------------------------------------------------- window


class Window:
    """An OpenCV window with keyboard controls (KEYS), a help overlay ('h') and screenshots ('s').

    `write(image, frame)` shows the image and handles keys (cv2.waitKey(1)); `.stop_requested`
    turns True on q/Esc or when the window is closed. While paused, call `poll()` so that keys
    (space to resume) still work. Raises LiveheatError when no display is available (checked
    with `display_available()` first, so a missing display never aborts the process). The
    window is resizable (aspect kept) and sized to each new image size, scaled down to fit
    `max_size` (W, H), so three panels side by side still fit the screen.

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
        self._closed = False
        self.max_size = (int(max_size[0]), int(max_size[1]))
        self._shape: tuple[int, int] | None = None
        # resizable, aspect kept; sized to the image (scaled down to fit max_size, e.g. panels)
        cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)

    def write(self, image: np.ndarray, frame: Any = None, *, features: Any = None) -> None:
        """Show one image (with help/toast/pause overlays) and handle pending keys."""
        if self._closed:
            return
        if features is not None:
            self.controls.features = features
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
        if self.show_help or toast or self.settings.paused:
            shown = shown.copy() if shown is self._last else shown
            scale, thick = _text_scale(shown)
            notes = []
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
