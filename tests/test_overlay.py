"""The overlay core: any 2D map onto any frame, checked against a float64 reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import liveheat
from liveheat.draw.overlay import COLORMAPS, resolve_colormap
from liveheat.settings.fields import MODES, NORMS

HEAT_DTYPES = [
    np.bool_,
    np.uint8,
    np.uint16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
]


def ref_normalize(heat: np.ndarray, norm: str, vmin=None, vmax=None, p=1.0):
    h = np.asarray(heat, dtype=np.float64)
    finite = np.isfinite(h)
    if not finite.any():
        return np.zeros(h.shape), False
    v = h[finite]
    if norm == "minmax":
        lo, hi = v.min(), v.max()
    elif norm == "percentile":
        lo, hi = np.percentile(v, (p, 100 - p))
    elif norm == "fixed":
        lo, hi = vmin, vmax
    if norm in ("minmax", "percentile", "fixed"):
        if not hi > lo:
            return np.zeros(h.shape), False
        out = (h - lo) / (hi - lo)
    elif norm == "sigmoid":
        out = 1 / (1 + np.exp(-np.clip(h, -60, 60)))
    else:
        out = h
    out = np.clip(np.where(finite, out, 0.0), 0, 1)
    return out, True


def ref_overlay(
    frame,
    heat,
    *,
    alpha,
    mode,
    colormap="jet",
    norm="minmax",
    threshold=None,
    vmin=None,
    vmax=None,
    tie=0.0,
):
    """The obvious float64 formula, pixel by pixel (what the fast path must agree with).

    ``tie`` nudges the rounding of the heat index, to accept either side of an exact .5 tie
    (float32 and float64 can land on either side of one).
    """
    f = frame.astype(np.float64)
    n, ok = ref_normalize(heat, norm, vmin, vmax)
    if not ok or alpha == 0:
        return frame.copy()
    H, W = frame.shape[:2]
    big = n * 255.0
    if big.shape != (H, W):
        big = cv2.resize(big, (W, H), interpolation=cv2.INTER_LINEAR)
    idx = np.clip(np.floor(big + 0.5 + tie), 0, 255).astype(np.int64)
    lut = resolve_colormap(colormap).reshape(256, 3).astype(np.float64)
    col = np.repeat(idx[..., None], 3, axis=2).astype(np.float64) if mode == "gray" else lut[idx]
    h = (idx / 255.0)[..., None]
    if mode in ("color", "gray"):
        out = f * (1 - alpha) + col * alpha
    elif mode == "transparent":
        out = f * (1 - alpha * h) + col * alpha * h
    else:
        out = f * ((1 - alpha) + alpha * h)
    if threshold is not None:
        out = np.where((idx / 255.0 < threshold)[..., None], f, out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the question's shapes
def test_same_size_map_on_bgr_image_the_question():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (32, 96, 3), dtype=np.uint8)
    heat = rng.random((32, 96)).astype(np.float32)
    for mode in MODES:
        out = liveheat.overlay(frame, heat, mode=mode, alpha=0.6)
        assert out.shape == (32, 96, 3) and out.dtype == np.uint8
        assert_close_to_reference(out, frame, heat, alpha=0.6, mode=mode)


def test_small_map_on_larger_frame_of_other_aspect():
    frame = np.full((128, 64, 3), 100, np.uint8)
    heat = np.zeros((32, 96), np.float32)
    heat[:, 48:] = 1.0  # right half hot
    out = liveheat.overlay(frame, heat, alpha=1.0, colormap="jet")
    assert out.shape == (128, 64, 3)
    jet = resolve_colormap("jet").reshape(256, 3)
    assert (out[:, :20] == jet[0]).all()  # left: coldest jet colour (dark blue)
    assert (out[:, -20:] == jet[255]).all()  # right: hottest (dark red)
    assert out[64, -1, 2] > 100 and out[64, 0, 0] > 100  # BGR: red is channel 2, blue channel 0


def test_colour_order_is_bgr_not_rgb():
    hot = liveheat.colorize(np.array([[0.0, 1.0]]), colormap="jet")
    b, g, r = hot[0, 1]
    assert r > 100 and b < 10  # jet's hot end is red in BGR order


def test_7x7_map_upscaled_smoothly_and_peak_kept_in_place():
    heat = np.zeros((7, 7))
    heat[1, 5] = 1.0
    frame = np.zeros((480, 640, 3), np.uint8)
    out = liveheat.overlay(frame, heat, mode="transparent", alpha=1.0)
    red = out[..., 2].astype(int) + out[..., 1]
    y, x = np.unravel_index(np.argmax(red), red.shape)
    assert abs(x - (5.5 / 7) * 640) < 640 / 7 and abs(y - (1.5 / 7) * 480) < 480 / 7
    assert (out[450:, :100] == 0).all()  # far from the peak: no heat, frame untouched


# ---------------------------------------------------------------- properties
frames = st.tuples(st.integers(1, 48), st.integers(1, 48), st.sampled_from([None, 3, 4])).flatmap(
    lambda s: hnp.arrays(np.uint8, s[:2] if s[2] is None else (*s[:2], s[2]))
)


@st.composite
def heats(draw):
    dtype = draw(st.sampled_from(HEAT_DTYPES))
    shape = draw(st.tuples(st.integers(1, 40), st.integers(1, 40)))
    if dtype == np.bool_:
        elems = st.booleans()
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        elems = st.integers(max(info.min, -(10**6)), min(info.max, 10**6))
    else:
        elems = st.floats(-1e4, 1e4, width=16 if dtype == np.float16 else 32)
    return draw(hnp.arrays(dtype, shape, elements=elems))


PROP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROP
@given(
    frame=frames,
    heat=heats(),
    mode=st.sampled_from(MODES),
    norm=st.sampled_from(["minmax", "percentile", "sigmoid", "none"]),
    alpha=st.floats(0, 1),
)
def test_output_shape_and_dtype(frame, heat, mode, norm, alpha):
    out = liveheat.overlay(frame, heat, mode=mode, norm=norm, alpha=alpha)
    expect = (*frame.shape[:2], 4 if frame.ndim == 3 and frame.shape[2] == 4 else 3)
    assert out.shape == expect and out.dtype == np.uint8
    if frame.ndim == 3 and frame.shape[2] == 4:
        assert (out[..., 3] == frame[..., 3]).all()  # BGRA keeps its alpha channel


@PROP
@given(frame=frames, heat=heats(), mode=st.sampled_from(MODES), norm=st.sampled_from(NORMS[:3]))
def test_alpha_zero_returns_frame_exactly(frame, heat, mode, norm):
    out = liveheat.overlay(frame, heat, mode=mode, norm=norm, alpha=0.0)
    bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame
    assert np.array_equal(out, bgr)


@PROP
@given(
    frame=hnp.arrays(np.uint8, st.tuples(st.integers(2, 40), st.integers(2, 40), st.just(3))),
    heat=heats(),
    alpha=st.floats(0.05, 1),
)
def test_transparent_zero_heat_pixel_equals_frame(frame, heat, alpha):
    out = liveheat.overlay(frame, heat, mode="transparent", alpha=alpha, interpolation="nearest")
    n = liveheat.normalize(heat)
    idx = cv2.resize(n, frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    cold = idx == 0
    assert np.array_equal(out[cold], frame[cold])


@PROP
@given(
    frame=hnp.arrays(np.uint8, st.tuples(st.integers(2, 40), st.integers(2, 40), st.just(3))),
    heat=heats(),
)
def test_mask_max_heat_is_frame_and_zero_heat_is_black(frame, heat):
    out = liveheat.overlay(frame, heat, mode="mask", alpha=1.0, interpolation="nearest")
    n = liveheat.normalize(heat)
    if n.max() == 0:  # constant map: nothing to draw, frame unchanged
        assert np.array_equal(out, frame)
        return
    idx = cv2.resize(n, frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(out[idx == 1.0], frame[idx == 1.0])
    assert (out[idx == 0.0] == 0).all()


@PROP
@given(
    frame=hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
    heat=heats(),
    cmap=st.sampled_from(sorted(COLORMAPS)),
)
def test_color_with_alpha_one_equals_colorize(frame, heat, cmap):
    out = liveheat.overlay(frame, heat, mode="color", alpha=1.0, colormap=cmap)
    if liveheat.normalize(heat).max() == 0:  # nothing to draw
        assert np.array_equal(out, frame)
        return
    col = liveheat.colorize(heat, colormap=cmap, size=frame.shape[1::-1])
    assert np.array_equal(out, col)


@PROP
@given(
    frame=hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))),
    heat=heats(),
    mode=st.sampled_from(MODES),
    alpha=st.floats(0, 1),
    threshold=st.one_of(st.none(), st.floats(0, 1)),
    norm=st.sampled_from(["minmax", "percentile", "sigmoid", "none"]),
)
def test_agrees_with_float64_reference_within_one_level(frame, heat, mode, alpha, threshold, norm):
    out = liveheat.overlay(frame, heat, mode=mode, alpha=alpha, threshold=threshold, norm=norm)
    if norm == "percentile":  # reference percentile on float64 may pick another value: skip
        return
    assert_close_to_reference(
        out, frame, heat, alpha=alpha, mode=mode, threshold=threshold, norm=norm
    )


def assert_close_to_reference(out, frame, heat, **kw):
    diffs = [
        np.abs(out.astype(int) - ref_overlay(frame, heat, tie=tie, **kw).astype(int))
        for tie in (-1e-3, 1e-3)
    ]
    assert np.minimum(*diffs).max() <= 1


@pytest.mark.parametrize("size", [(480, 640), (1080, 1920)])
@pytest.mark.parametrize("mode", MODES)
def test_large_frames_banded_path_agrees_with_reference(size, mode):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    heat = rng.random((7, 7))
    out = liveheat.overlay(
        frame, heat, mode=mode, alpha=0.7, threshold=0.3 if mode == "gray" else None
    )
    assert_close_to_reference(
        out, frame, heat, alpha=0.7, mode=mode, threshold=0.3 if mode == "gray" else None
    )


# ---------------------------------------------------------------- edge cases
def test_nan_and_inf_count_as_no_heat_and_never_spread():
    heat = np.zeros((8, 8), np.float32)
    heat[2, 2] = np.nan
    heat[5, 5] = np.inf
    heat[6, 1] = -np.inf
    heat[0, 7] = 1.0
    n = liveheat.normalize(heat)
    assert np.isfinite(n).all() and n[2, 2] == 0 and n[5, 5] == 0 and n[0, 7] == 1
    frame = np.full((64, 64, 3), 77, np.uint8)
    out = liveheat.overlay(frame, heat, mode="transparent", alpha=1.0)
    assert np.array_equal(out[40:50, 40:50], frame[40:50, 40:50])  # the inf cell is cold
    assert not np.array_equal(out[:8, 56:], frame[:8, 56:])  # the hot cell shows


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("heat", [np.full((5, 5), 3.0), np.full((5, 5), np.nan), np.zeros((1, 1))])
def test_constant_or_all_nan_map_leaves_frame_unchanged_without_warnings(mode, heat, recwarn):
    frame = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = liveheat.overlay(frame, heat, mode=mode, alpha=0.8)
    assert np.array_equal(out, frame)
    assert out is not frame
    assert len(recwarn) == 0
    assert (liveheat.normalize(heat) == 0).all()


def test_caller_arrays_are_never_modified():
    heat = np.array([[np.nan, 2.0], [0.5, 9.0]], np.float32)
    keep = heat.copy()
    frame = np.zeros((4, 4, 3), np.uint8)
    for norm in ("minmax", "none", "sigmoid"):
        liveheat.overlay(frame, heat, norm=norm)
    assert np.array_equal(heat, keep, equal_nan=True) and not frame.any()


def test_grey_uint16_and_float_frames_are_converted_once():
    heat = np.random.default_rng(3).random((4, 4))
    g = liveheat.overlay(np.full((10, 10), 200, np.uint8), heat, alpha=0)
    assert g.shape == (10, 10, 3) and (g == 200).all()
    u16 = liveheat.overlay(np.full((10, 10, 3), 65535, np.uint16), heat, alpha=0)
    assert (u16 == 255).all()
    fl = liveheat.overlay(np.full((10, 10, 3), 0.5, np.float32), heat, alpha=0)
    assert (fl == 128).all()


def test_squeezes_singleton_dims_and_rejects_other_shapes():
    frame = np.zeros((10, 10, 3), np.uint8)
    heat = np.random.default_rng(4).random((5, 5))
    a = liveheat.overlay(frame, heat[None])
    b = liveheat.overlay(frame, heat[..., None])
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"\(3, 5, 5\)"):
        liveheat.overlay(frame, np.zeros((3, 5, 5)))
    with pytest.raises(ValueError, match="frame"):
        liveheat.overlay(np.zeros((10, 10, 2), np.uint8), heat)


def test_fixed_norm_keeps_one_scale_across_frames():
    frame = np.zeros((8, 8, 3), np.uint8)
    dim = np.full((8, 8), 0.2)
    dim[0, 0] = 0.25
    bright = np.full((8, 8), 0.8)
    bright[0, 0] = 0.85
    a = liveheat.overlay(frame, dim, norm="fixed", vmin=0, vmax=1, mode="gray", alpha=1)
    b = liveheat.overlay(frame, bright, norm="fixed", vmin=0, vmax=1, mode="gray", alpha=1)
    assert a[4, 4, 0] == 51 and b[4, 4, 0] == 204  # 0.2 and 0.8 of 255: not re-stretched
    with pytest.raises(ValueError, match="vmin and vmax"):
        liveheat.overlay(frame, dim, norm="fixed")


def test_percentile_clips_outliers():
    heat = np.linspace(0, 1, 10000).reshape(100, 100)
    heat[0, 0] = 1e6
    n = liveheat.normalize(heat, norm="percentile", percentile=1.0)
    assert n[50, 50] == pytest.approx(0.5, abs=0.02)
    assert liveheat.normalize(heat)[50, 50] < 1e-5  # minmax is ruined by the outlier


def test_threshold_leaves_cold_pixels_untouched_in_every_mode():
    frame = np.full((16, 16, 3), 90, np.uint8)
    heat = np.tile(np.linspace(0, 1, 16), (16, 1))
    for mode in MODES:
        out = liveheat.overlay(frame, heat, mode=mode, alpha=0.9, threshold=0.5)
        assert np.array_equal(out[:, :7], frame[:, :7]), mode
        assert not np.array_equal(out[:, 9:], frame[:, 9:]), mode


def test_colormap_by_name_int_and_table():
    heat = np.random.default_rng(5).random((6, 6))
    by_name = liveheat.colorize(heat, colormap="Turbo")
    by_int = liveheat.colorize(heat, colormap=cv2.COLORMAP_TURBO)
    table = resolve_colormap("turbo").reshape(256, 3).copy()
    by_table = liveheat.colorize(heat, colormap=table)
    assert np.array_equal(by_name, by_int) and np.array_equal(by_name, by_table)
    with pytest.raises(ValueError, match="did you mean 'jet'") as e:
        liveheat.colorize(heat, colormap="jt")
    assert "viridis" in str(e.value)


def test_unknown_mode_and_norm_name_the_valid_ones():
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="did you mean 'transparent'"):
        liveheat.overlay(frame, np.eye(4), mode="transparnt")
    with pytest.raises(ValueError, match="minmax"):
        liveheat.overlay(frame, np.eye(4), norm="max-min")


def test_panels_layout_and_colorbar_labels():
    frame = np.full((120, 160, 3), 50, np.uint8)
    heat = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5
    img = liveheat.panels(frame, heat)
    assert img.shape[0] == 120 and img.shape[1] > 3 * 160
    assert np.array_equal(img[:, :160], frame)
    assert np.array_equal(img[:, 160:320], liveheat.colorize(heat, size=(160, 120)))
    assert np.array_equal(img[:, 320:480], liveheat.overlay(frame, heat))
    bar = img[:, 480:]
    assert bar.shape[1] > 10 and (bar == 255).any()  # white label text drawn
    plain = liveheat.panels(frame, heat, colorbar=False)
    assert plain.shape == (120, 480, 3)


@pytest.mark.parametrize("shape", [(300, 1000), (7, 1), (1, 333), (1080, 1920)])
def test_packed_colormap_lookup_equals_opencv_for_every_colormap(shape):
    from liveheat.draw.overlay import _lookup

    idx = np.random.default_rng(6).integers(0, 256, shape, dtype=np.uint8)
    for name in COLORMAPS:
        lut = resolve_colormap(name)
        got = _lookup(idx, lut, np.empty((*shape, 3), np.uint8), "test")
        assert np.array_equal(got, cv2.applyColorMap(idx, lut)), name


@pytest.mark.parametrize(
    ("map_shape", "frame_shape"),
    [
        ((7, 7), (1080, 1920)),
        ((32, 96), (1080, 1920)),
        ((1, 1), (37, 53)),
        ((1, 9), (480, 640)),
        ((9, 1), (480, 640)),
        ((5, 3), (1000, 7)),
        ((13, 17), (13, 1000)),
        ((2, 2), (3, 3)),
    ],
)
def test_chunked_map_rows_equal_one_opencv_resize(map_shape, frame_shape):
    # overlay() computes the upscaled map chunk by chunk (widen once, then a small matrix
    # product per chunk of rows): it must equal cv2.resize of the whole map, but for
    # rounding at exact .5 ties, however the chunks are cut
    from liveheat.draw.overlay import _row_source

    rng = np.random.default_rng(8)
    n = rng.random(map_shape).astype(np.float32)
    h, w = frame_shape
    want = cv2.resize(n.astype(np.float64) * 255.0, (w, h), interpolation=cv2.INTER_LINEAR)
    rows_of = _row_source(n, (w, h), "linear")
    whole = rows_of(slice(0, h), np.empty((h, w), np.uint8)).copy()
    tie = np.abs(want - np.floor(want) - 0.5) < 1e-3
    assert np.array_equal(whole[~tie], np.rint(want[~tie]).astype(np.uint8))
    assert np.abs(whole.astype(int) - np.rint(want)).max() <= 1
    for step in (1, 8, 61):
        pieces = [
            rows_of(slice(y, min(y + step, h)), np.empty((min(step, h - y), w), np.uint8)).copy()
            for y in range(0, h, step)
        ]
        chunked = np.vstack(pieces)
        assert np.array_equal(chunked[~tie], whole[~tie])
        assert np.abs(chunked.astype(int) - whole).max() <= 1


def test_color_alpha_one_equals_colorize_on_a_banded_1080p_frame():
    rng = np.random.default_rng(9)
    frame = rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    for shape in ((7, 7), (32, 96), (45, 80)):
        heat = rng.random(shape)
        out = liveheat.overlay(frame, heat, alpha=1.0, colormap="turbo")
        assert np.array_equal(out, liveheat.colorize(heat, colormap="turbo", size=(1920, 1080)))
