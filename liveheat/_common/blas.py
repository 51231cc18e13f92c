"""One BLAS thread while liveheat works, and only then (threadpoolctl's scoped limits).

liveheat's matrices are tiny and onnxruntime already keeps every core busy. A threaded OpenBLAS
call leaves its worker threads busy-waiting for about 0.1 s afterwards, and on a small machine
that spinning takes a core from inference (measured: fp32 inference 4.5 ms -> 3.3 ms on two
cores once the spinning stops). So a run (`Runner.run`) and a frame (`Annotator.annotate`) hold
every loaded OpenBLAS (numpy's, the copy inside OpenCV's wheel) at one thread, and put the
counts back afterwards: `import liveheat` changes nothing, and a host program's own products
keep their threads. The command line owns its process and sets OPENBLAS_NUM_THREADS=1 at start.
A user who set OPENBLAS_NUM_THREADS keeps that choice everywhere.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

ENV = "OPENBLAS_NUM_THREADS"
_lock = threading.Lock()
_depth = 0
_limiter = None  # threadpoolctl's _ThreadpoolLimiter while the outermost scope is open
_controller = None
_controller_libs = -1


def _blas_controller():
    """threadpoolctl's view of the BLAS libraries loaded now (made again when more load)."""
    global _controller, _controller_libs
    from threadpoolctl import ThreadpoolController

    n = _loaded_count()
    if _controller is None or n != _controller_libs:
        _controller = ThreadpoolController().select(user_api="blas")
        _controller_libs = n
    return _controller


def _loaded_count() -> int:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            return len({ln.split()[-1] for ln in f if "blas" in ln.lower() and "/" in ln})
    except OSError:  # not Linux: threadpoolctl finds them its own way, once
        return 0


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold every loaded OpenBLAS at one thread inside the block (nested blocks are free).

    Nothing is limited when the user set OPENBLAS_NUM_THREADS. Thread-safe: the outermost
    block (in any thread) sets the limit, the last one to leave restores the counts.

    Examples:
        >>> with one_blas_thread():
        ...     pass
    """
    global _depth, _limiter
    if ENV in os.environ and not _owned_env():
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                _limiter = _blas_controller().limit(limits=1)
            except Exception:  # noqa: BLE001 - an odd BLAS build: run unlimited, never fail
                _limiter = None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None


_OWNED = "_LIVEHEAT_SET_OPENBLAS"


def claim_process() -> None:
    """The command line: one BLAS thread for the whole process, unless the user chose."""
    if ENV not in os.environ:
        os.environ[ENV] = "1"
        os.environ[_OWNED] = "1"


def _owned_env() -> bool:
    return os.environ.get(_OWNED) == "1"


def threads() -> list[tuple[str, int]]:
    """(library file, its thread count) for each BLAS loaded here, as it reports it."""
    return [
        (os.path.basename(i["filepath"]), int(i["num_threads"])) for i in _blas_controller().info()
    ]


def who_chose() -> str:
    """Who chose the BLAS thread count: liveheat (the command line) or the environment."""
    if _owned_env():
        return "set by liveheat"
    if ENV in os.environ:
        return f"{ENV}={os.environ[ENV]} from the environment"
    return "library default; liveheat limits it to 1 during its own work"
