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

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ENV = "OPENBLAS_NUM_THREADS"
_lock = threading.Lock()
_depth = 0
_saved: list[tuple[Any, int]] = []  # (a library, its count) to restore
_found: list[Any] | None = None
_found_key = -1


class _Lib:
    """One loaded OpenBLAS, its thread count read and set through its own C functions.

    threadpoolctl finds the libraries, but its OpenBLAS setter lets only the first Python
    thread that ever called it change the count (others are silently ignored), and a run
    limits BLAS from its render thread. liveheat keeps its own lock and counter instead, so
    it calls OpenBLAS's process-wide setter directly. An OpenMP build (per-thread counts)
    goes through threadpoolctl, where every thread may set its own.
    """

    def __init__(self, controller) -> None:
        self.filepath = controller.filepath
        self.get, self.set = controller.get_num_threads, controller.set_num_threads
        if getattr(controller, "threading_layer", "") != "openmp":
            funcs = _openblas_funcs(controller.filepath)
            if funcs is not None:
                self.get, self.set = funcs


def _openblas_funcs(path: str):
    """OpenBLAS's (get, set) thread-count functions in the library at ``path``, or None."""
    import ctypes

    try:
        dll = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    for prefix in ("", "scipy_"):
        for suffix in ("", "64_", "_64"):
            get = getattr(dll, f"{prefix}openblas_get_num_threads{suffix}", None)
            put = getattr(dll, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                get.restype, put.restype = ctypes.c_int, None
                put.argtypes = [ctypes.c_int]
                return get, put
    return None


def _libs() -> list[_Lib]:
    """The BLAS libraries loaded now; looked up again only when more modules have been
    imported since (a new native library comes with an import)."""
    global _found, _found_key
    key = len(sys.modules)
    if _found is None or key != _found_key:
        from threadpoolctl import ThreadpoolController

        found = ThreadpoolController().select(user_api="blas").lib_controllers
        _found = [_Lib(c) for c in found]
        _found_key = key
    return _found


class _OneThread:
    """The context manager `one_blas_thread()` returns (a plain class: a generator-based one
    costs more than the limit itself, and the overlay enters it on every call)."""

    __slots__ = ("active",)

    def __enter__(self) -> None:
        global _depth
        self.active = not (ENV in os.environ and not _owned_env())
        if not self.active:
            return
        with _lock:
            if _depth == 0:
                try:
                    for lib in _libs():
                        n = lib.get()
                        if n != 1:
                            lib.set(1)
                            _saved.append((lib, n))
                except Exception:  # noqa: BLE001 - an odd BLAS build: run unlimited, never fail
                    pass
            _depth += 1

    def __exit__(self, *exc: object) -> None:
        global _depth
        if not self.active:
            return
        with _lock:
            _depth -= 1
            if _depth == 0:
                while _saved:
                    lib, n = _saved.pop()
                    lib.set(n)


def one_blas_thread() -> _OneThread:
    """Hold every loaded OpenBLAS at one thread inside the block (nested blocks are free).

    Nothing is limited when the user set OPENBLAS_NUM_THREADS. Thread-safe: the outermost
    block (in any thread, the main one or not) sets the limit, the last one to leave restores
    the counts. The outermost block costs a few microseconds (OpenBLAS's own setter, called
    directly); a nested one a lock and a counter.

    Examples:
        >>> with one_blas_thread():
        ...     pass
    """
    return _OneThread()


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
    return [(os.path.basename(lib.filepath), int(lib.get())) for lib in _libs()]


def who_chose() -> str:
    """Who chose the BLAS thread count: liveheat (the command line) or the environment."""
    if _owned_env():
        return "set by liveheat"
    if ENV in os.environ:
        return f"{ENV}={os.environ[ENV]} from the environment"
    return "library default; liveheat limits it to 1 during its own work"
