"""Image files for `liveheat image`: read any image OpenCV reads, read a map, write atomically.

OpenCV and numpy are imported inside the functions (a broken OpenCV must not stop the
command line from starting).
"""

from __future__ import annotations

import os
import zipfile

from liveheat._common.files import atomic_write
from liveheat.errors import LiveheatError


def read_image(path: str):
    """Read any image OpenCV reads, unchanged (grey, BGR, BGRA, 16-bit); LiveheatError if not."""
    import cv2

    if os.path.isdir(path):
        raise LiveheatError(
            f"cannot read image {path!r}: it is a folder; `liveheat run {path}` annotates a "
            f"folder of images as a video, `liveheat batch {path} -o OUTDIR` each image alone"
        )
    if not os.path.isfile(path):
        raise LiveheatError(f"cannot read image {path!r}: no such file")
    img = imread_quietly(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise LiveheatError(f"cannot read image {path!r}: not an image OpenCV can decode")
    return img


def imread_quietly(path: str, flags: int):
    """cv2.imread without OpenCV's own stderr lines; LiveheatError for an image OpenCV refuses
    to decode at all (a header declaring more than OpenCV's limit of 2^30 pixels)."""
    import cv2

    from liveheat._common.system import quiet_opencv

    try:
        with quiet_opencv():
            return cv2.imread(path, flags)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):
            why = "it declares more pixels than OpenCV decodes (2^30)"
        else:
            why = " ".join(str(e).split())[-160:]
        raise LiveheatError(f"cannot read image {path!r}: {why}") from None


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
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        why = "not a valid .npz (zip) file" if isinstance(e, zipfile.BadZipFile) else e
        raise LiveheatError(f"cannot read map {path!r}: {why}") from None
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


def check_image_output(path: str, *, source: str | None = None) -> None:
    """Check up front that an image can be written at `path` (not a folder, a known image
    extension, an existing folder, not the `source` file itself); LiveheatError if not."""
    import cv2

    from liveheat._common.files import same_file

    if os.path.isdir(path) or path.endswith(("/", os.sep)):
        raise LiveheatError(
            f"cannot write {path!r}: it is a folder; give a file name such as "
            f"{os.path.join(path, 'out.png')!r}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise LiveheatError(f"cannot write {path!r}: folder {folder!r} does not exist")
    ext = os.path.splitext(path)[1]
    if not cv2.haveImageWriter(path):
        raise LiveheatError(
            f"cannot write {path!r}: unknown image extension {ext!r}; "
            "use .png, .jpg, .bmp, .tiff or .webp"
        )
    if source is not None and same_file(source, path):
        raise LiveheatError(
            f"-o {path!r} is the input image; write the annotated image to another file"
        )


def write_image(path: str, image) -> None:
    """Write an image atomically: a temporary file beside `path`, renamed on success; nothing
    is left on error and an older file at `path` stays as it was.

    Raises:
        LiveheatError: the folder does not exist, the extension is not an image format, or
            the write failed (disk full, permissions).
    """
    import cv2

    from liveheat._common.system import quiet_opencv, quiet_stderr

    check_image_output(path)
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
