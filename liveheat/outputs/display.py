"""Is there a display a window can open on? Asked once, safely (imshow aborts without one)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import sys
import threading

from liveheat._common.system import gui_backend

# --------------------------------------------------------------------------------- display check


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

    Args:
        probe: also try a window in a child process (the surest check; cached per display).

    Returns:
        ``(ok, reason)``: whether a window can be shown, and one line saying why or why not.

    Raises:
        Nothing: every failure is answered as ``(False, reason)``.

    Examples:
        >>> ok, reason = display_available()
        >>> isinstance(ok, bool) and isinstance(reason, str)
        True
        >>> ok, reason                                     # doctest: +SKIP
        (False, 'no display (DISPLAY is not set)')
    """
    gui = gui_backend().split()[0].upper()
    if gui == "NONE":
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
