"""The machine: usable cores, OpenCV's GUI backend, and keeping OpenCV's own lines quiet.

OpenCV is imported only inside the functions that need it, so a broken OpenCV (the classic:
`libGL.so.1` missing on a server) still lets `liveheat doctor` start and say so.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware; at least 1).

    Examples:
        >>> usable_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def gui_backend() -> str:
    """OpenCV's GUI backend as its build information names it (`QT5`, `GTK3`, `WIN32UI`, ...),
    or "none" for a headless build.

    Examples:
        >>> isinstance(gui_backend(), str)
        True
    """
    try:
        import cv2
    except ImportError:  # doctor reports the import error itself
        return "none"

    for line in cv2.getBuildInformation().splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip() == "GUI":
            value = value.strip()
            return value if value and value.split()[0].upper() not in ("NONE", "NO") else "none"
    return "none"


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own WARN/ERROR log lines inside the block (nested and thread-safe):
    liveheat says what went wrong in one line of its own.

    Examples:
        >>> with quiet_opencv():
        ...     pass
    """
    global _quiet_depth, _quiet_saved
    import cv2

    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:  # an OpenCV without the logging module
        yield
        return
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = log.getLogLevel()
            log.setLogLevel(log.LOG_LEVEL_SILENT)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                log.setLogLevel(_quiet_saved)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence native libraries (FFmpeg, V4L) that print straight to file descriptor 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, captured): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
