"""The overlay kernel: normalise a map, colour it, blend it onto a frame, fast."""

from __future__ import annotations

import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from liveheat._common.blas import blas_scoped
from liveheat._common.images import as_bgr_u8
from liveheat._common.text import did_you_mean
from liveheat.settings.fields import colormap_names, validate  # the one rule of each setting

#: every OpenCV colormap by lower-case name, e.g. ``COLORMAPS["jet"] == cv2.COLORMAP_JET``
COLORMAPS: dict[str, int] = {
    name: getattr(cv2, "COLORMAP_" + name.upper()) for name in colormap_names()
}
INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
_OVERSHOOTING = (cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
# frames with at least this many pixels are blended in row bands on two threads
_BAND_MIN_PIXELS = 640 * 480
_BANDS = 2
# a band is blended in chunks of rows whose float map rows take about this many bytes, so
# that a chunk's map rows, indices and colours stay in cache
_CHUNK_BYTES = 768 * 1024
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _choose(value: str, valid, what: str) -> str:
    """Check a word that is no setting (interpolation) against its vocabulary; the error names
    close and valid words. Settings (mode, norm, colormap) go through `validate`."""
    if isinstance(value, str) and value.lower() in valid:
        return value.lower()
    hint = did_you_mean(value, valid, before=" ")
    raise ValueError(f"unknown {what} {value!r};{hint} valid: {', '.join(valid)}")


# ---------------------------------------------------------------- colormaps
@functools.cache
def _builtin_lut(cmap_id: int) -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    lut = cv2.applyColorMap(ramp, cmap_id)
    lut.setflags(write=False)
    return lut  # (256, 1, 3) uint8 BGR


_GRAY_LUT = np.repeat(np.arange(256, dtype=np.uint8).reshape(256, 1, 1), 3, axis=2)
_GRAY_LUT.setflags(write=False)


def resolve_colormap(colormap: str | int | np.ndarray) -> np.ndarray:
    """Return the (256, 1, 3) uint8 BGR lookup table for a colormap.

    ``colormap`` is an OpenCV colormap name (case-insensitive: ``"jet"``, ``"turbo"``, ...),
    a ``cv2.COLORMAP_*`` int, or a 256x3 (or 256x1x3) uint8 BGR table.

    Args:
        colormap: a name, a ``cv2.COLORMAP_*`` int or a 256x3 uint8 BGR table.

    Returns:
        The (256, 1, 3) uint8 BGR table (read-only for the built-in colormaps).

    Raises:
        ValueError: a table of another shape or dtype, an unknown id, or another type. An
            unknown name raises `SettingError` (a ValueError) with the setting's message.

    Examples:
        >>> resolve_colormap("JET").shape
        (256, 1, 3)
        >>> bool((resolve_colormap(cv2.COLORMAP_JET) == resolve_colormap("jet")).all())
        True
    """
    if isinstance(colormap, np.ndarray):
        if colormap.dtype != np.uint8 or colormap.size != 768 or colormap.shape[0] != 256:
            raise ValueError(
                f"a colormap table must be 256x3 uint8 BGR, got shape {colormap.shape} "
                f"dtype {colormap.dtype}"
            )
        return np.ascontiguousarray(colormap.reshape(256, 1, 3))
    if isinstance(colormap, (int, np.integer)) and not isinstance(colormap, bool):
        if int(colormap) not in COLORMAPS.values():
            raise ValueError(
                f"unknown colormap id {colormap}; valid: cv2.COLORMAP_* ids "
                f"{sorted(COLORMAPS.values())} or names {', '.join(COLORMAPS)}"
            )
        return _builtin_lut(int(colormap))
    if isinstance(colormap, str):
        return _builtin_lut(COLORMAPS[validate("colormap", colormap)])
    raise ValueError(
        f"colormap must be a name, a cv2.COLORMAP_* int or a 256x3 uint8 table, got {colormap!r}"
    )


# ---------------------------------------------------------------- normalisation
def _as_map(heat, *, wide: bool = False) -> np.ndarray:
    """Any 2D array-like -> float32 2D (squeezing (1,h,w) and (h,w,1)); else ValueError.

    ``wide``: a float64 (or wider, or 64-bit integer) map stays float64, so that values
    beyond float32's range (~3.4e38) are scaled before they are narrowed, not made inf."""
    arr = np.asarray(heat)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[2]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:2])
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"heat must be a 2D map (h, w) (or (1, h, w) / (h, w, 1)), got shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"heat must be numeric or bool, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError("heat must be real-valued, got a complex array")
    if wide and arr.dtype.itemsize > 4 and arr.dtype.kind in "fiu":
        return np.asarray(arr, dtype=np.float64)
    return np.asarray(arr, dtype=np.float32)


def _normalize(heat, norm, vmin, vmax, percentile) -> tuple[np.ndarray, bool]:
    """Scale to float32 [0, 1]; non-finite -> 0. Returns (map, informative).

    ``informative`` is False when the map carries nothing to draw: every value non-finite, or
    (for ``minmax``/``percentile``) a constant map. Then the map is all zeros.
    """
    norm = validate("norm", norm)
    h = _as_map(heat, wide=True)
    ft = h.dtype.type  # float32, or float64 for a wide map (scaled in float64)
    finite = np.isfinite(h)
    all_finite = bool(finite.all())
    if not all_finite:
        if not finite.any():
            return np.zeros_like(h), False
        h = np.where(finite, h, ft(0))  # a copy; the caller's array is never touched
    values = h if all_finite else h[finite]
    if norm in ("minmax", "percentile"):
        if norm == "minmax":
            lo, hi = float(values.min()), float(values.max())
        else:
            if not 0.0 <= percentile < 50.0:
                raise ValueError(f"percentile must be in [0, 50), got {percentile}")
            lo, hi = (float(v) for v in np.percentile(values, (percentile, 100.0 - percentile)))
        if not hi > lo:
            return np.zeros_like(h), False
        out = (h - ft(lo)) * ft(1.0 / (hi - lo))
    elif norm == "fixed":
        if vmin is None or vmax is None:
            raise ValueError("norm='fixed' needs vmin and vmax (one scale across many frames)")
        if not float(vmax) > float(vmin):
            raise ValueError(f"norm='fixed' needs vmax > vmin, got vmin={vmin} vmax={vmax}")
        out = (h - ft(vmin)) * ft(1.0 / (float(vmax) - float(vmin)))
    elif norm == "sigmoid":
        out = np.clip(h, -60.0, 60.0)
        np.negative(out, out=out)
        np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
    else:  # "none": already in [0, 1]; clip into a new array, never the caller's
        out = np.clip(h, 0.0, 1.0)
    np.clip(out, 0.0, 1.0, out=out)
    if not all_finite:
        out[~finite] = 0.0
    return out.astype(np.float32, copy=False), True


def normalize(
    heat: np.ndarray,
    *,
    norm: str = "minmax",
    vmin: float | None = None,
    vmax: float | None = None,
    percentile: float = 1.0,
) -> np.ndarray:
    """Scale a 2D map to float32 in [0, 1], as matplotlib's imshow does for ``minmax``.

    ``norm``: ``"minmax"`` (this map's min and max), ``"percentile"`` (clip at ``percentile``
    and ``100 - percentile``, robust to outliers), ``"sigmoid"`` (raw activations),
    ``"fixed"`` (``vmin``/``vmax``: one scale across many frames), ``"none"`` (clip only).
    NaN and +-Inf count as no heat (0) and are left out of min, max and percentiles.
    A constant or all-NaN map has no contrast and comes back as zeros (no division by zero).

    Args:
        heat: a 2D numeric or bool map (h, w); (1, h, w) and (h, w, 1) are squeezed.
        norm: ``"minmax"``, ``"percentile"``, ``"sigmoid"``, ``"fixed"`` or ``"none"``.
        vmin: the value drawn as 0 under ``norm="fixed"``; unused otherwise.
        vmax: the value drawn as 1 under ``norm="fixed"``; unused otherwise.
        percentile: the percentile clipped at each end under ``norm="percentile"``, in [0, 50).

    Returns:
        A new float32 array (h, w) in [0, 1]; the caller's array is never changed.

    Raises:
        ValueError: ``heat`` is not a 2D real numeric map, ``norm`` is unknown, ``percentile``
            is outside [0, 50), or ``norm="fixed"`` lacks ``vmin``/``vmax`` or has
            ``vmax <= vmin``.

    Examples:
        >>> normalize(np.array([[0, 5], [10, np.nan]])).tolist()
        [[0.0, 0.5], [1.0, 0.0]]
        >>> float(normalize(np.full((2, 2), 3.0)).max())
        0.0
        >>> normalize(np.array([[0.0, 20.0]]), norm="fixed", vmin=0, vmax=10).tolist()
        [[0.0, 1.0]]
    """
    return _normalize(heat, norm, vmin, vmax, percentile)[0]


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread scratch buffer, reused while the frame size stays the same.

    Fresh multi-megabyte arrays on every frame cost page faults (several ms at 1080p);
    reused ones do not. Scratch never leaves this module: results are always new arrays.
    """
    bufs = getattr(_scratch_tls, "bufs", None)
    if bufs is None:
        bufs = _scratch_tls.bufs = {}
    buf = bufs.get(name)
    if buf is None or buf.shape != shape or buf.dtype != dtype:
        buf = bufs[name] = np.empty(shape, dtype)
    return buf


_scratch_tls = threading.local()


def _to_index(scaled: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """float32 heat-index map -> uint8, rounded to nearest (never truncated), saturated at 255."""
    return cv2.convertScaleAbs(scaled, dst=dst)


def _chunk_rows(height: int, width: int) -> int:
    """Rows per chunk: about _CHUNK_BYTES of float32 map rows (at least 8, at most all)."""
    return min(height, max(8, _CHUNK_BYTES // (4 * width)))


def _chunks(band: slice, height: int, width: int) -> list[slice]:
    """The chunks of rows a band (of a frame height x width) is blended in."""
    step = _chunk_rows(height, width)
    return [slice(y, min(y + step, band.stop)) for y in range(band.start, band.stop, step)]


def _row_source(norm01: np.ndarray, size: tuple[int, int], interpolation: str):
    """A function (rows, dst) -> the uint8 heat indices of those rows of the map at ``size``.

    Bilinear upscaling is separable. The map is widened once (tiny: h x W), and each chunk
    of output rows is then a blend of the few widened rows it lies between: one small
    matrix product (rows x k) @ (k x W) with k <= 4 or so, computed when the chunk is
    needed, so it never leaves the cache. Other cases (other interpolations, a map larger
    than the frame) scale the whole map once and hand out its rows.
    """
    inter = INTERPOLATIONS[_choose(interpolation, INTERPOLATIONS, "interpolation")]
    width, height = size
    h, w = norm01.shape
    if inter == cv2.INTER_LINEAR and h <= height and w <= width and (h, w) != (height, width):
        wide = norm01 * np.float32(255.0)
        if w != width:
            wide = cv2.resize(wide, (width, h), interpolation=inter)
        weights, first, last = _vertical_weights(h, height)

        def rows_of(rows: slice, dst: np.ndarray) -> np.ndarray:
            m = rows.stop - rows.start
            k0, k1 = first[rows.start], last[rows.stop - 1] + 1
            out = _scratch("rows", (max(m, _chunk_rows(height, width)), width), np.float32)[:m]
            np.matmul(weights[rows, k0:k1], wide[k0:k1], out=out)
            return _to_index(out, dst)

        return rows_of
    scaled = norm01 * np.float32(255.0)
    if (h, w) != (height, width):
        dst = _scratch("scaled", (height, width), np.float32)
        scaled = cv2.resize(scaled, size, dst=dst, interpolation=inter)
        if inter in _OVERSHOOTING:  # cubic and lanczos ring below 0; convertScaleAbs takes |x|
            np.maximum(scaled, 0.0, out=scaled)

    def rows_from_scaled(rows: slice, dst: np.ndarray) -> np.ndarray:
        return _to_index(scaled[rows], dst)

    return rows_from_scaled


@functools.lru_cache(maxsize=32)
def _vertical_weights(h: int, height: int) -> tuple[np.ndarray, list[int], list[int]]:
    """OpenCV's bilinear weights from h rows to ``height`` rows, as a (height, h) matrix.

    Row y samples source row fy = (y + 0.5) * h / height - 0.5, clamped at both edges (as
    cv2.resize does). Also each row's first and last source row with a nonzero weight.
    """
    y = np.arange(height)
    fy = (y + 0.5) * (h / height) - 0.5
    k = np.floor(fy).astype(np.int64)
    frac = fy - k
    lo, hi = np.clip(k, 0, h - 1), np.clip(k + 1, 0, h - 1)
    frac = np.where(k < 0, 0.0, np.where(k >= h - 1, 0.0, frac))
    weights = np.zeros((height, h), np.float64)
    np.add.at(weights, (y, lo), 1.0 - frac)
    np.add.at(weights, (y, hi), frac)
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights, lo.tolist(), hi.tolist()


_LITTLE_ENDIAN = sys.byteorder == "little"
_LOOKUP_BYTES = 1024 * 1024  # packed colours handled per step: one step per overlay chunk


@functools.lru_cache(maxsize=64)
def _packed_lut(lut_bytes: bytes) -> np.ndarray:
    """A BGR table packed one colour per int32 (B | G << 8 | R << 16), for `_lookup`."""
    bgr = np.frombuffer(lut_bytes, np.uint8).reshape(256, 3).astype(np.int32)
    packed = (bgr[:, 0] | (bgr[:, 1] << 8) | (bgr[:, 2] << 16)).reshape(256, 1)
    packed.setflags(write=False)
    return packed


def _lookup(idx: np.ndarray, lut: np.ndarray, dst: np.ndarray, scratch: str) -> np.ndarray:
    """dst (h, w, 3) = lut[idx]: the colormap of a uint8 index image, exactly.

    One 32-bit table lookup plus a BGRA -> BGR conversion: about half the CPU of
    cv2.applyColorMap (which converts grey to BGR, then looks up three channels).
    """
    if not _LITTLE_ENDIAN:  # the packing below assumes little-endian int32
        return cv2.applyColorMap(idx, lut, dst=dst)
    h, w = idx.shape
    table = _packed_lut(lut.tobytes())
    step = max(1, _LOOKUP_BYTES // (4 * w))  # rows whose packed colours stay in cache
    packed = _scratch(scratch, (min(step, h), w), np.int32)
    for y in range(0, h, step):
        n = min(step, h - y)
        cv2.LUT(idx[y : y + n], table, dst=packed[:n])
        bgra = packed[:n].view(np.uint8).reshape(n, w, 4)
        cv2.cvtColor(bgra, cv2.COLOR_BGRA2BGR, dst=dst[y : y + n])
    return dst


@blas_scoped
def colorize(
    heat: np.ndarray,
    *,
    colormap: str | int | np.ndarray = "jet",
    norm: str = "minmax",
    vmin: float | None = None,
    vmax: float | None = None,
    percentile: float = 1.0,
    size: tuple[int, int] | None = None,
    interpolation: str = "linear",
) -> np.ndarray:
    """Turn a 2D map into a BGR uint8 heatmap image (``size`` = (width, height), default the map's).

    A constant or all-NaN map shows the colormap's lowest colour everywhere.

    Args:
        heat: a 2D numeric or bool map (h, w); (1, h, w) and (h, w, 1) are squeezed.
        colormap: an OpenCV colormap name, a ``cv2.COLORMAP_*`` int or a 256x3 uint8 BGR
            table (see :func:`resolve_colormap`).
        norm: how the map is scaled to [0, 1]; see :func:`normalize`.
        vmin: the low end of the scale under ``norm="fixed"``.
        vmax: the high end of the scale under ``norm="fixed"``.
        percentile: the percentile clipped at each end under ``norm="percentile"``.
        size: the output's (width, height); None keeps the map's size.
        interpolation: how the map is resized: ``nearest``, ``linear``, ``cubic``, ``area``
            or ``lanczos``.

    Returns:
        A new uint8 BGR image (height, width, 3).

    Raises:
        ValueError: a bad map, colormap, norm, percentile, ``vmin``/``vmax`` or interpolation.

    Examples:
        >>> colorize(np.eye(7), colormap="turbo", size=(64, 48)).shape
        (48, 64, 3)
        >>> colorize(np.zeros((2, 2)), colormap="bone")[0, 0].tolist()  # no contrast: lowest colour
        [0, 0, 0]
    """
    lut = resolve_colormap(colormap)
    n, _ = _normalize(heat, norm, vmin, vmax, percentile)
    size = (n.shape[1], n.shape[0]) if size is None else (int(size[0]), int(size[1]))
    # the map rows in the same chunks as overlay(), so that overlay(alpha=1) == colorize
    # exactly (chunks cut elsewhere may round an exact .5 tie the other way)
    rows_of = _row_source(n, size, interpolation)
    idx = np.empty(size[::-1], np.uint8)
    for band in _bands(size[1], size[0]):
        for r in _chunks(band, size[1], size[0]):
            rows_of(r, idx[r])
    return _lookup(idx, lut, np.empty((*idx.shape, 3), np.uint8), "packed-colorize")


# ---------------------------------------------------------------- blending
def _as_frame(frame) -> tuple[np.ndarray, np.ndarray | None]:
    """Any supported frame -> (uint8 BGR HxWx3 contiguous, alpha channel or None); values by
    `as_bgr_u8`'s rule for each dtype (the alpha channel's too)."""
    f = np.asarray(frame)
    if f.ndim == 3 and f.shape[2] == 1:
        f = f[:, :, 0]
    if f.ndim not in (2, 3) or (f.ndim == 3 and f.shape[2] not in (3, 4)) or f.size == 0:
        raise ValueError(f"frame must be HxW (grey), HxWx3 (BGR) or HxWx4 (BGRA), got {f.shape}")
    alpha = None
    if f.ndim == 3 and f.shape[2] == 4:
        a = f[:, :, 3]
        alpha = np.ascontiguousarray(a) if a.dtype == np.uint8 else as_bgr_u8(a)[:, :, 0].copy()
    return np.ascontiguousarray(as_bgr_u8(f)), alpha


def _with_alpha(bgr: np.ndarray, alpha_channel: np.ndarray | None) -> np.ndarray:
    if alpha_channel is None:
        return bgr
    out = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    out[:, :, 3] = alpha_channel
    return out


@functools.lru_cache(maxsize=256)
def _blend_tables(mode: str, lut_bytes: bytes, alpha: float, threshold: float | None):
    """Per-index tables so that out = frame * s[i] / 255 + t[i] (i = heat index 0..255).

    Cached by value: the colormap comes as its 768 bytes, so the cache holds no arrays.
    """
    lut = np.frombuffer(lut_bytes, np.uint8)
    i = np.arange(256, dtype=np.float64) / 255.0
    colour = lut.reshape(256, 3).astype(np.float64)
    if mode in ("color", "gray"):
        w = np.full(256, alpha)
    elif mode == "transparent":
        w = alpha * i
    else:  # mask: frame scaled by (1 - alpha) + alpha * heat
        w = np.zeros(256)
    keep = 1.0 - w if mode != "mask" else (1.0 - alpha) + alpha * i
    if threshold is not None:
        cold = i < threshold
        w = np.where(cold, 0.0, w)
        keep = np.where(cold, 1.0, keep)
    s = np.rint(keep * 255.0).astype(np.uint8)
    t = np.rint(w[:, None] * colour).astype(np.uint8).reshape(256, 1, 3)
    s.setflags(write=False)
    t.setflags(write=False)
    return s, t, bool(t.any())


def _bands(height: int, width: int) -> list[slice]:
    """Row bands for the blend: one for small frames, else _BANDS bands for the worker pool.

    Each band runs colormap + blend while its rows are still in cache, and the pool runs
    bands side by side (cv2.addWeighted alone uses one core).
    """
    if height * width < _BAND_MIN_PIXELS or (os.cpu_count() or 1) < 2 or height < _BANDS:
        return [slice(0, height)]
    cuts = [height * k // _BANDS for k in range(_BANDS + 1)]
    return [slice(cuts[k], cuts[k + 1]) for k in range(_BANDS)]


def _map_bands(fn, bands: list[slice]) -> None:
    """Run ``fn`` on each band: the first on this thread, the others on the worker pool."""
    global _pool
    if len(bands) > 1 and _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="liveheat-blend")
    futures = [_pool.submit(fn, b) for b in bands[1:]] if len(bands) > 1 else []
    try:
        fn(bands[0])
    finally:
        for fut in futures:
            fut.result()


@blas_scoped
def overlay(
    frame: np.ndarray,
    heat: np.ndarray,
    *,
    alpha: float = 0.5,
    colormap: str | int | np.ndarray = "jet",
    mode: str = "color",
    norm: str = "minmax",
    vmin: float | None = None,
    vmax: float | None = None,
    percentile: float = 1.0,
    threshold: float | None = None,
    interpolation: str = "linear",
) -> np.ndarray:
    """Blend a 2D map of any size onto a frame; returns a new uint8 image the size of the frame.

    ``frame``: uint8 HxW (grey), HxWx3 (BGR) or HxWx4 (BGRA; its alpha channel is kept). uint16
    frames are scaled by 1/257 and float frames are read as [0, 1], once. Output: BGR (grey in,
    BGR out) or BGRA. ``heat``: any 2D numeric or bool map, (1,h,w)/(h,w,1) squeezed; resized to
    the frame with ``interpolation`` (``nearest``, ``linear``, ``cubic``, ``area``, ``lanczos``).

    ``mode``:
      - ``"color"``: colormapped heat alpha-blended onto the frame (``alpha=1``: the heatmap alone).
      - ``"gray"``: grey heat alpha-blended.
      - ``"mask"``: frame x heat, eased by alpha: ``frame * ((1 - alpha) + alpha * heat)``;
        ``alpha=1`` is the classic mask (hot pixels as they are, cold ones black).
      - ``"transparent"``: colormap with per-pixel opacity ``alpha * heat``: cold regions show the
        frame untouched.
    ``norm``/``vmin``/``vmax``/``percentile``: see :func:`normalize`. ``colormap``: see
    :func:`resolve_colormap`. ``threshold`` (on the [0, 1] map): pixels below it keep the frame
    untouched in every mode. NaN/Inf pixels are "no heat" (0).

    A map with nothing to draw (all NaN; or constant under ``minmax``/``percentile``) returns the
    frame unchanged in every mode. ``alpha=0`` returns the frame unchanged.

    Args:
        frame: the image to draw on: HxW, HxWx3 (BGR) or HxWx4 (BGRA); uint8, uint16 or float.
        heat: a 2D numeric or bool map of any size; resized to the frame.
        alpha: the heat's weight in [0, 1]; 0 returns the frame unchanged.
        colormap: an OpenCV colormap name, a ``cv2.COLORMAP_*`` int or a 256x3 uint8 table.
        mode: ``"color"``, ``"gray"``, ``"mask"`` or ``"transparent"`` (see above).
        norm: how the map is scaled to [0, 1]; see :func:`normalize`.
        vmin: the low end of the scale under ``norm="fixed"``.
        vmax: the high end of the scale under ``norm="fixed"``.
        percentile: the percentile clipped at each end under ``norm="percentile"``.
        threshold: pixels whose [0, 1] heat is below it keep the frame; None draws all.
        interpolation: ``nearest``, ``linear``, ``cubic``, ``area`` or ``lanczos``.

    Returns:
        A new uint8 image the size of the frame: BGR, or BGRA when the frame had an alpha
        channel. The frame itself is never changed.

    Raises:
        ValueError: a bad frame shape, map, colormap, percentile, ``vmin``/``vmax`` or
            interpolation. A bad ``mode``, ``alpha``, ``threshold`` or ``norm`` raises
            `SettingError` (a ValueError) with the same message a flag or config file gives.

    Examples:
        >>> frame = np.zeros((32, 96, 3), np.uint8)
        >>> overlay(frame, np.random.rand(32, 96)).shape
        (32, 96, 3)
        >>> overlay(np.zeros((128, 64, 3), np.uint8), np.random.rand(32, 96), mode="mask").shape
        (128, 64, 3)
        >>> overlay(np.zeros((8, 8), np.uint8), np.ones((8, 8)), alpha=0.0).shape  # grey: BGR
        (8, 8, 3)
        >>> try:
        ...     overlay(frame, np.random.rand(4, 4), mode="glow")
        ... except ValueError as e:
        ...     print("ValueError")
        ValueError
    """
    mode = validate("mode", mode)  # the settings' rules: the same words as a flag or config
    alpha = validate("alpha", alpha)
    threshold = validate("threshold", threshold)
    lut = resolve_colormap(colormap) if mode != "gray" else _GRAY_LUT
    bgr, alpha_channel = _as_frame(frame)
    n, informative = _normalize(heat, norm, vmin, vmax, percentile)
    if alpha == 0.0 or not informative:
        return _with_alpha(bgr.copy() if bgr is frame else bgr, alpha_channel)
    height, width = bgr.shape[:2]
    out = np.empty_like(bgr)
    rows_of = _row_source(n, (width, height), interpolation)

    if mode in ("color", "gray") and threshold is None:

        def blend_chunk(r: slice, idx: np.ndarray, colored: np.ndarray, tag: str) -> None:
            _lookup(idx, lut, colored, tag)
            cv2.addWeighted(bgr[r], 1.0 - alpha, colored, alpha, 0.0, dst=out[r])

    else:
        s, t, add_t = _blend_tables(mode, lut.tobytes(), alpha, threshold)

        def blend_chunk(r: slice, idx: np.ndarray, colored: np.ndarray, tag: str) -> None:
            keep = cv2.LUT(idx, s)
            keep3 = _scratch(tag + "keep3", (_chunk_rows(height, width), width, 3), np.uint8)
            keep3 = keep3[: idx.shape[0]]
            cv2.merge((keep, keep, keep), dst=keep3)
            cv2.multiply(bgr[r], keep3, dst=out[r], scale=1 / 255)
            if add_t:
                cv2.add(out[r], _lookup(idx, t, colored, tag), dst=out[r])

    def blend(rows: slice) -> None:
        # chunk by chunk: the map rows, their colours and the blend of one chunk stay in
        # cache, so the only full-frame memory traffic is the frame in and the result out
        tag = f"band{rows.start}"
        step = _chunk_rows(height, width)
        idx = _scratch(tag + "idx", (step, width), np.uint8)
        colored = _scratch(tag + "colored", (step, width, 3), np.uint8)
        for r in _chunks(rows, height, width):
            m = r.stop - r.start
            blend_chunk(r, rows_of(r, idx[:m]), colored[:m], tag)

    _map_bands(blend, _bands(height, width))
    return _with_alpha(out, alpha_channel)
