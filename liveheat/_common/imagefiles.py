"""Image files for `liveheat image`: read any image OpenCV reads, read a map, write atomically.

OpenCV and numpy are imported inside the functions (a broken OpenCV must not stop the
command line from starting).
"""

from __future__ import annotations

import os

from liveheat._common.files import atomic_write
from liveheat.errors import LiveheatError


def read_image(path: str):
    """Read any image OpenCV reads, unchanged (grey, BGR, BGRA, 16-bit); LiveheatError if not."""
    import cv2

    if not os.path.isfile(path):
        raise LiveheatError(f"cannot read image {path!r}: no such file")
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise LiveheatError(f"cannot read image {path!r}: not an image OpenCV can decode")
    return img


def read_map(path: str, index: int | None = None):
    """A heatmap from .npy, .npz (one array, or a `--dump-maps` file: row `index` of its
    `maps`) or an image read as grey; LiveheatError if not."""
    import cv2
    import numpy as np

    if not os.path.isfile(path):
        raise LiveheatError(f"cannot read map {path!r}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            heat = np.load(path, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "maps" in z.files and "frames" in z.files:  # a --dump-maps file
                    return _dumped_map(path, z["maps"], index)
                if len(z.files) != 1:
                    raise LiveheatError(
                        f"map {path!r} holds {len(z.files)} arrays ({', '.join(z.files)}); "
                        "expected exactly one"
                    )
                heat = z[z.files[0]]
        else:
            heat = cv2.imread(path, cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH)
            if heat is None:
                raise LiveheatError(f"cannot read map {path!r}: not .npy, .npz or an image")
    except (ValueError, OSError, EOFError) as e:
        raise LiveheatError(f"cannot read map {path!r}: {e}") from None
    if index is not None:
        raise LiveheatError(f"--index picks a map of a --dump-maps file; {path!r} is one map")
    heat = np.asarray(heat)
    if heat.ndim == 3 and 1 in (heat.shape[0], heat.shape[2]):
        heat = heat.reshape(heat.shape[1:] if heat.shape[0] == 1 else heat.shape[:2])
    if heat.ndim != 2:
        raise LiveheatError(f"map {path!r} has shape {heat.shape}; expected a 2D map (h, w)")
    return heat


def _dumped_map(path: str, maps, index: int | None):
    n = len(maps)
    if n == 0:
        raise LiveheatError(f"map file {path!r} holds no maps (the run drew none)")
    if index is None and n > 1:
        raise LiveheatError(f"{path!r} holds {n} maps; pick one with --index I (0..{n - 1})")
    i = 0 if index is None else index
    if not 0 <= i < n:
        raise LiveheatError(f"--index {i} is out of range; {path!r} holds maps 0..{n - 1}")
    return maps[i]


def write_image(path: str, image) -> None:
    """Write an image atomically: a temporary file beside `path`, renamed on success; nothing
    is left on error and an older file at `path` stays as it was.

    Raises:
        LiveheatError: the folder does not exist, the extension is not an image format, or
            the write failed (disk full, permissions).
    """
    import cv2

    from liveheat._common.system import quiet_opencv, quiet_stderr

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise LiveheatError(f"cannot write {path!r}: folder {folder!r} does not exist")
    ext = os.path.splitext(path)[1]
    if not cv2.haveImageWriter(path):
        raise LiveheatError(
            f"cannot write {path!r}: unknown image extension {ext!r}; "
            "use .png, .jpg, .bmp, .tiff or .webp"
        )
    with atomic_write(path, "") as tmp:
        try:
            with quiet_opencv(), quiet_stderr():  # libpng's own "Write Error" line
                ok = cv2.imwrite(str(tmp), image)
        except cv2.error as e:
            raise LiveheatError(
                f"cannot write {path!r}: {str(e).strip().splitlines()[-1]}"
            ) from None
        if not ok:
            raise LiveheatError(f"cannot write {path!r}: OpenCV could not write the file")
