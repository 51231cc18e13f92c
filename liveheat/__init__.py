"""liveheat: show what a CNN looks at, live — ONNX feature maps blended onto video frames.

Public API: `overlay`, `colorize`, `normalize`, `panels` (drawing), `Backbone`, `Features`
(model), `heatmap`, `TemporalSmoother` (maps), `Settings`, and `run_video` (the runner).
"""

from __future__ import annotations

import importlib

from liveheat import _blas

# one BLAS thread (see liveheat/_blas.py): set before numpy and OpenCV load their OpenBLAS, and
# through the C API of copies already loaded. OPENBLAS_NUM_THREADS set by the user wins.
_OWN_BLAS = _blas.claim_env()

__version__ = "0.1.0"

# eager: the module liveheat/overlay.py shares its name with the function `liveheat.overlay`.
# Should OpenCV or numpy not load (a classic: opencv-python without libGL.so.1 on a server),
# the package still imports, so that `liveheat doctor` can say what is wrong; the drawing
# functions then raise that ImportError when asked for.
try:
    from liveheat.overlay import colorize, normalize, overlay, panels  # noqa: E402, F401
except ImportError as _e:
    _IMPORT_ERROR: ImportError | None = _e
else:
    _IMPORT_ERROR = None

if _OWN_BLAS:
    _blas.limit_loaded()

_LAZY = {
    "Backbone": "liveheat.backbone",
    "Features": "liveheat.backbone",
    "heatmap": "liveheat.heatmaps",
    "TemporalSmoother": "liveheat.heatmaps",
    "Settings": "liveheat.settings",
    "run_video": "liveheat.pipeline",
}

__all__ = sorted([*_LAZY, "overlay", "colorize", "normalize", "panels"])


def __getattr__(name: str):
    # lazy: `import liveheat` stays cheap, and `liveheat.overlay` is the function, not the module
    if _IMPORT_ERROR is not None and name in ("overlay", "colorize", "normalize", "panels"):
        raise ImportError(f"liveheat.{name} needs OpenCV and numpy: {_IMPORT_ERROR}")
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'liveheat' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)
