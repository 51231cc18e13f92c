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
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ENV = "OPENBLAS_NUM_THREADS"
_lock = threading.Lock()
_depth = 0
_saved: list[tuple[object, int]] = []  # (threadpoolctl lib controller, its count) to restore
_controller = None
_controller_key = -1


def _libs():
    """threadpoolctl's controllers of the BLAS libraries loaded now; looked up again only when
    more modules have been imported since (a new native library comes with an import)."""
    global _controller, _controller_key
    key = len(sys.modules)
    if _controller is None or key != _controller_key:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController().select(user_api="blas")
        _controller_key = key
    return _controller.lib_controllers


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Hold every loaded OpenBLAS at one thread inside the block (nested blocks are free).

    Nothing is limited when the user set OPENBLAS_NUM_THREADS. Thread-safe: the outermost
    block (in any thread) sets the limit, the last one to leave restores the counts. The
    outermost block costs a few microseconds (threadpoolctl's library controllers, called
    directly); a nested one a lock and a counter.

    Examples:
        >>> with one_blas_thread():
        ...     pass
    """
    global _depth
    if ENV in os.environ and not _owned_env():
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                for lib in _libs():
                    n = lib.num_threads
                    if n != 1:
                        lib.set_num_threads(1)
                        _saved.append((lib, n))
            except Exception:  # noqa: BLE001 - an odd BLAS build: run unlimited, never fail
                pass
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                while _saved:
                    lib, n = _saved.pop()
                    lib.set_num_threads(n)


def blas_scoped(fn: F) -> F:
    """Run `fn` inside `one_blas_thread()`: for liveheat's public functions that call BLAS
    (the overlay's row products, EigenCAM's Gram), so a direct call gets what a run gets."""

    @functools.wraps(fn)
    def scoped(*args: Any, **kwargs: Any) -> Any:
        with one_blas_thread():
            return fn(*args, **kwargs)

    return scoped  # type: ignore[return-value]


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
    return [(os.path.basename(lib.filepath), int(lib.get_num_threads())) for lib in _libs()]


def who_chose() -> str:
    """Who chose the BLAS thread count: liveheat (the command line) or the environment."""
    if _owned_env():
        return "set by liveheat"
    if ENV in os.environ:
        return f"{ENV}={os.environ[ENV]} from the environment"
    return "library default; liveheat limits it to 1 during its own work"
