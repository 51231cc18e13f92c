"""One BLAS thread for the whole process (numpy's and OpenCV's OpenBLAS alike).

liveheat's matrices are tiny and onnxruntime already keeps every core busy. A threaded OpenBLAS
call leaves its worker threads busy-waiting for about 0.1 s afterwards, and on a small machine
that spinning takes a core from inference (measured: fp32 inference 4.5 ms -> 3.3 ms on two
cores once the spinning stops). OpenBLAS reads OPENBLAS_NUM_THREADS when it loads; copies that
are already loaded (numpy or cv2 imported before liveheat) are set through their C API, the
way threadpoolctl does it. Nothing is changed when the user has set OPENBLAS_NUM_THREADS.
"""

from __future__ import annotations

import ctypes
import os

_ENV = "OPENBLAS_NUM_THREADS"
_SETTERS = (
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
)


def claim_env() -> bool:
    """Set OPENBLAS_NUM_THREADS=1 unless the user chose; True when liveheat set it."""
    if _ENV in os.environ:
        return False
    os.environ[_ENV] = "1"
    return True


def _loaded() -> list[tuple[str, ctypes.CDLL]]:
    """(file name, handle) of every OpenBLAS loaded in this process (Linux: /proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return []
    libs = []
    for path in paths:
        try:
            libs.append((os.path.basename(path), ctypes.CDLL(path, mode=os.RTLD_NOLOAD)))
        except (OSError, AttributeError):
            continue
    return libs


def _symbol(lib: ctypes.CDLL, names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def limit_loaded() -> list[str]:
    """Set every OpenBLAS already loaded in this process to one thread; the names of those set.

    Linux only (it reads /proc/self/maps); elsewhere, and on any failure, a silent no-op.
    """
    done = []
    for name, lib in _loaded():
        setter = _symbol(lib, _SETTERS)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            setter.restype = None
            setter(1)
            done.append(name)
    return done


def threads() -> list[tuple[str, int]]:
    """(library file, its thread count) for each OpenBLAS loaded here, as it reports it."""
    out = []
    for name, lib in _loaded():
        getter = _symbol(lib, [n.replace("set_", "get_") for n in _SETTERS])
        if getter is not None:
            getter.argtypes = []
            getter.restype = ctypes.c_int
            out.append((name, int(getter())))
    return out
