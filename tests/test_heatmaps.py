"""heatmap(): every method against a numpy reference, EigenCAM sign, crops; TemporalSmoother.

Features come from the bundled model on real images and the bundled clip.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from conftest import clip_frames, skimage_bgr

from liveheat.errors import LiveheatError
from liveheat.model.backbone import Backbone
from liveheat.model.eigen import top_eigvec
from liveheat.model.heatmaps import METHODS, crop_valid, heatmap, target_index
from liveheat.model.smoothing import TemporalSmoother


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def cat(bb_fp32, chelsea):
    return bb_fp32(chelsea)


@pytest.fixture(scope="module")
def clip_feats(bb_fp32):
    return [bb_fp32(f) for f in clip_frames(40, start=30)]


# ---------------------------------------------------------------- methods
def test_methods_match_numpy(cat):
    m = cat.maps
    np.testing.assert_allclose(heatmap(cat, "mean"), m.mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(heatmap(cat, "max"), m.max(axis=0))
    np.testing.assert_allclose(heatmap(cat, "norm"), np.linalg.norm(m, axis=0), rtol=1e-5)
    np.testing.assert_array_equal(heatmap(cat, "channel:17"), m[17])
    np.testing.assert_array_equal(heatmap(cat, " Channel:17 "), m[17])
    for method in ("cam", "eigen", "mean", "max", "norm", "channel:0"):
        heat = heatmap(cat, method)
        assert heat.shape == (7, 7) and heat.dtype == np.float32 and np.isfinite(heat).all()
    assert METHODS == ("cam", "eigen", "mean", "max", "norm", "channel:K")


def test_cam_is_the_relu_of_the_class_weighted_sum(cat):
    t = int(np.argmax(cat.logits))
    want = np.maximum(np.einsum("c,chw->hw", cat.cam_weights[t], cat.maps), 0)
    np.testing.assert_allclose(heatmap(cat, "cam"), want, rtol=1e-4, atol=1e-4)
    assert heatmap(cat, "cam", "espresso").min() == 0.0  # negative evidence clipped
    assert (np.einsum("c,chw->hw", cat.cam_weights[967], cat.maps) < 0).any()
    # target by index, by digits, by full name and by one of its synonyms: the same map
    same = [heatmap(cat, "cam", x) for x in (t, str(t), cat.labels[t], "Egyptian cat")]
    for heat in same:
        np.testing.assert_array_equal(heat, same[0])
    # another class explains other evidence
    espresso = heatmap(cat, "cam", "espresso")
    assert not np.allclose(espresso, same[0])
    assert espresso.sum() < same[0].sum()


def test_target_names_resolve(cat):
    assert target_index(cat, None) == int(np.argmax(cat.logits))
    assert target_index(cat, "tabby") == 281
    assert target_index(cat, "TIGER CAT") == 282
    with pytest.raises(LiveheatError, match="did you mean 'espresso'"):
        target_index(cat, "espreso")
    with pytest.raises(LiveheatError, match="out of range; expected 0..999"):
        heatmap(cat, "cam", 1000)


@pytest.mark.parametrize(
    "method, pattern",
    [
        ("eigne", "did you mean 'eigen'"),
        ("cma", "did you mean 'cam'"),
        ("gradcam", "valid: cam, eigen, mean, max, norm, channel:K"),
        ("channel", "channel:K"),
        ("channel:x", "channel:K"),
        ("channel:1280", "channels 0..1279"),
    ],
)
def test_bad_methods_explain_themselves(cat, method, pattern):
    with pytest.raises(LiveheatError, match=pattern):
        heatmap(cat, method)


def test_cam_on_another_layer_suggests_eigen(chelsea):
    feats = Backbone(layer="blocks.10", threads=1)(chelsea)
    with pytest.raises(LiveheatError, match="'features'.*'blocks.10'.*'eigen' or 'mean'"):
        heatmap(feats, "cam")
    assert heatmap(feats, "eigen").shape == (14, 14)


# ---------------------------------------------------------------- EigenCAM
def test_eigen_is_the_first_principal_component(cat, clip_feats):
    for feats in [cat, *clip_feats[:5]]:
        c, h, w = feats.maps.shape
        x = feats.maps.reshape(c, -1).T
        x = x - x.mean(axis=0)
        u, s, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)  # the reference
        ref = (x @ vt[0]).reshape(h, w)
        eig = heatmap(feats, "eigen")
        assert abs(corr(eig, ref)) > 0.9999
        np.testing.assert_allclose(np.abs(eig), np.abs(ref), rtol=1e-3, atol=1e-3 * s[0])


def test_top_eigvec_on_a_wide_and_a_tall_matrix():
    rng = np.random.default_rng(3)
    for shape in ((40, 300), (300, 40), (1280, 49)):  # matrix-free, and the Gram
        a = (rng.normal(size=(shape[0], 3)) @ rng.normal(size=(3, shape[1]))).astype(np.float32)
        a += 0.1 * rng.normal(size=shape).astype(np.float32)
        u, lam = top_eigvec(a)
        vals, vecs = np.linalg.eigh((a.T @ a).astype(np.float64))
        assert lam == pytest.approx(vals[-1], rel=1e-4)
        assert abs(float(u @ vecs[:, -1])) > 0.9999
        # centred without a copy: the same as centring first
        a += rng.normal(size=(shape[0], 1)).astype(np.float32)
        mean = a.mean(axis=1)
        u, lam = top_eigvec(a, centre=True)
        ac = (a - mean[:, None]).astype(np.float64)
        vals, vecs = np.linalg.eigh(ac.T @ ac)
        assert lam == pytest.approx(vals[-1], rel=1e-3)
        assert abs(float(u @ vecs[:, -1])) > 0.9999


def test_eigen_sign_is_stable(bb_fp32, cat, chelsea, coffee):
    # the same frame twice: the same map
    np.testing.assert_array_equal(heatmap(bb_fp32(chelsea), "eigen"), heatmap(cat, "eigen"))
    # a slightly shifted frame: a similar map, not its negative
    for img in (chelsea, coffee, skimage_bgr("astronaut")):
        shifted = np.roll(img, (6, -9), axis=(0, 1))
        a, b = heatmap(bb_fp32(img), "eigen"), heatmap(bb_fp32(shifted), "eigen")
        assert corr(a, b) > 0.5  # 0.63 for the cat (the wrapped edge moves its PC), else > 0.98
    # it points along the class evidence: positive where the CAM is
    assert corr(heatmap(cat, "eigen"), heatmap(cat, "cam")) > 0.5


def test_eigen_does_not_flip_along_the_clip(clip_feats):
    maps = [heatmap(f, "eigen") for f in clip_feats]
    steps = [corr(a, b) for a, b in zip(maps, maps[1:], strict=False)]
    assert min(steps) > 0.5, np.round(steps, 2)


def test_eigen_without_classifier_anchors_to_the_mean(cat):
    bare = dataclasses.replace(cat, logits=None, cam_weights=None)
    assert corr(heatmap(bare, "eigen"), heatmap(bare, "mean")) > 0


# ---------------------------------------------------------------- crops (letterbox)
def test_crop_valid_cuts_integer_and_fractional_edges():
    heat = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)
    np.testing.assert_array_equal(crop_valid(heat, (0, 7, 0, 9)), heat)
    np.testing.assert_array_equal(crop_valid(heat, (2, 5, 0, 9)), heat[2:5])
    frac = crop_valid(heat, (1.5, 5.5, 0, 9))  # split cells: 8 per cell
    assert frac.shape == (32, 72)
    fine = cv2.resize(heat, (72, 56), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(frac, fine[12:44])


def test_letterboxed_heatmap_covers_the_frame_only(chelsea):
    wide = cv2.copyMakeBorder(chelsea, 0, 0, 300, 300, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    tall = cv2.rotate(wide, cv2.ROTATE_90_CLOCKWISE)
    bb = Backbone(resize="letterbox", threads=1)
    for frame in (wide, tall):
        feats = bb(frame)
        for method in ("cam", "eigen", "mean"):
            heat = heatmap(feats, method)
            aspect = frame.shape[1] / frame.shape[0]
            assert heat.shape[1] / heat.shape[0] == pytest.approx(aspect, rel=0.08)


# ---------------------------------------------------------------- temporal smoothing
def test_smoother_reduces_frame_to_frame_change(clip_feats):
    raw = [heatmap(f, "cam") for f in clip_feats]
    smooth = TemporalSmoother(0.6)
    out = [smooth(h) for h in raw]

    def change(seq):
        return float(np.mean([np.abs(b - a).mean() for a, b in zip(seq, seq[1:], strict=False)]))

    assert change(out) < 0.75 * change(raw)
    # the EMA of min/max brackets the smoothed map (norm="fixed" never clips it)
    assert smooth.vmin <= out[-1].min() + 1e-4 and out[-1].max() <= smooth.vmax + 1e-4
    # an EMA: the output is factor * previous output + (1 - factor) * input
    f = 0.6
    np.testing.assert_allclose(out[1], f * out[0] + (1 - f) * raw[1], rtol=1e-5, atol=1e-5)


def test_smoother_resets_on_a_scene_cut(clip_feats, cat):
    smooth = TemporalSmoother(0.8)
    for f in clip_feats:
        smooth(heatmap(f, "cam"), features=f)
    assert smooth.cuts == 0  # one shot: the top-1 class changes, the scene does not
    # the cat is another scene: its map passes through unchanged, the range restarts
    heat = heatmap(cat, "cam")
    np.testing.assert_array_equal(smooth(heat, features=cat), heat)
    assert smooth.cuts == 1
    assert (smooth.vmin, smooth.vmax) == (float(heat.min()), float(heat.max()))
    # without the cut test the old scene bleeds in
    keep = TemporalSmoother(0.8, cut_threshold=None)
    for f in clip_feats:
        keep(heatmap(f, "cam"), features=f)
    assert corr(keep(heat, features=cat), heat) < 0.99
    assert keep.cuts == 0


def test_smoother_without_features_cuts_on_an_anticorrelated_map(clip_feats):
    maps = [heatmap(f, "mean") for f in clip_feats]
    smooth = TemporalSmoother(0.6)
    for heat in maps:
        smooth(heat)
    assert smooth.cuts == 0  # mean maps of one shot stay correlated
    flipped = -maps[-1]
    np.testing.assert_array_equal(smooth(flipped), flipped)
    assert smooth.cuts == 1


def test_smoother_reset_size_change_and_off():
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 7), np.float32), rng.random((7, 7), np.float32)
    smooth = TemporalSmoother(0.5, cut_threshold=None)
    smooth(a)
    assert not np.array_equal(smooth(b), b)
    smooth.reset()
    np.testing.assert_array_equal(smooth(b), b)
    c = rng.random((9, 12), np.float32)  # a new input size: start over
    np.testing.assert_array_equal(smooth(c), c)
    off = TemporalSmoother(0.0)
    off(a)
    np.testing.assert_array_equal(off(b), b)
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(LiveheatError, match="0 <= factor < 1"):
            TemporalSmoother(bad)


def test_small_gram_fast_path_and_its_lanczos_fallback_agree_with_eigh():
    from liveheat.model.eigen import _power_by_squaring, top_eigvec

    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(49, 49)))
    for second in (0.3, 0.999):  # a clear top component, then two almost equal ones
        vals = np.linspace(0.01, 0.2, 49)
        vals[-1], vals[-2] = 1.0, second
        a = (np.sqrt(vals)[:, None] * q.T).astype(np.float32)  # a.T @ a = q diag(vals) q.T
        gram = a.T @ a
        assert (_power_by_squaring(gram, None) is None) == (second > 0.9)  # near-tie: Lanczos
        w, v = np.linalg.eigh(gram.astype(np.float64))
        u, lam = top_eigvec(a)
        assert lam == pytest.approx(w[-1], rel=1e-3)
        if second < 0.9:
            assert abs(float(np.dot(u, v[:, -1]))) > 0.9999


def _svd_reference(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values and right vectors of the channel-centred (C, N) maps, in float64."""
    x = a.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    return s, vt


@pytest.mark.parametrize("size", [224, 320])
def test_eigen_fast_path_agrees_with_svd_for_every_anchor(bb_fp32, chelsea, size):
    from liveheat.model.eigen import _GRAM_WORK

    feats = Backbone(input_size=size, threads=1)(chelsea)
    c, h, w = feats.maps.shape
    assert c * h * w * h * w <= _GRAM_WORK  # 7x7 and 10x10: the one-graph path
    s, vt = _svd_reference(feats.maps.reshape(c, -1))
    ref = (vt[0] * s[0]).reshape(h, w)
    bare = dataclasses.replace(feats, logits=None, cam_weights=None)
    for f, target, anchor in (
        (feats, None, None),  # probability-weighted CAM of the top 10
        (feats, 285, heatmap(feats, "cam", 285)),  # the CAM of the class asked for
        (bare, None, heatmap(bare, "mean")),  # no classifier: the channel mean
    ):
        eig = heatmap(f, "eigen", target)
        np.testing.assert_allclose(np.abs(eig), np.abs(ref), rtol=1e-3, atol=1e-4 * s[0])
        if anchor is not None:  # the sign points along the anchor
            assert float(np.sum(eig * (anchor - anchor.mean()))) > 0


def test_eigen_with_fewer_than_ten_classes_and_a_near_tie(cat):
    from liveheat.model.eigen import _EIGEN_GRAPH

    rng = np.random.default_rng(11)
    c, n = 96, 49
    a = rng.normal(size=(c, n))
    a -= a.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    for gap in (2.0, 1.000001):  # a clear top component, then two almost equal ones
        s2 = s.copy()
        s2[0] = s2[1] * gap
        x = ((u * s2) @ vt + 5.0).astype(np.float32)  # + 5: the centring matters
        logits = rng.normal(size=5).astype(np.float32)
        weights = rng.normal(size=(5, c)).astype(np.float32)
        feats = dataclasses.replace(
            cat, maps=x.reshape(c, 7, 7), logits=logits, cam_weights=weights, valid=(0, 7, 0, 7)
        )
        fast = _EIGEN_GRAPH.run(x, logits=logits, weights=weights)
        assert (fast is None) == (gap < 1.5)  # near-tie: the graph hands over to Lanczos
        eig = heatmap(feats, "eigen").ravel().astype(np.float64)
        assert float(eig @ eig) == pytest.approx(s2[0] ** 2, rel=1e-3)  # |map|^2 = lambda
        span = vt[:1] if gap > 1.5 else vt[:2]  # the map lies in the top eigenspace
        assert np.linalg.norm(span @ eig) / np.linalg.norm(eig) > 0.999
        # sign: along the softmax-weighted CAM of the (five) classes
        p = np.exp(logits - logits.max())
        anchor = (p / p.sum()) @ weights @ (x - x.mean(axis=1, keepdims=True))
        assert float(eig @ anchor) > 0


def test_blas_is_limited_only_around_liveheats_own_work(tmp_path):
    # OpenBLAS (numpy's, and the copy inside OpenCV's wheel that cv2.gemm calls) busy-waits
    # for ~0.1 s after a threaded call: on a 2-core machine that steals a core from inference.
    # liveheat holds it at one thread during a run, and nowhere else: importing liveheat leaves
    # a host program's own products threaded (the control), and the counts come back after.
    import os
    import subprocess
    import sys

    code = """
import os, sys, time
import numpy as np, cv2
import liveheat
from liveheat._common.blas import one_blas_thread, threads
def ticks():
    out = {}
    for t in os.listdir("/proc/self/task"):
        if int(t) != os.getpid():
            st = open(f"/proc/self/task/{t}/stat").read().rsplit(")", 1)[1].split()
            out[t] = int(st[11]) + int(st[12])
    return out
def work():
    for _ in range(3):
        cv2.gemm(a, a, 1.0, None, 0.0, flags=cv2.GEMM_1_T)
        a.T @ a
def spun():
    before = ticks()
    time.sleep(0.4)
    after = ticks()
    return sum(v - before.get(k, 0) for k, v in after.items())
a = np.random.default_rng(0).normal(size=(1280, 400)).astype(np.float32)
time.sleep(1.0)  # OpenBLAS threads also spin for a while after they start, at import
counts = [n for _, n in threads()]
work()
host = spun()
with one_blas_thread():
    inside = [n for _, n in threads()]
    work()
    scoped = spun()
print(host, scoped, min(counts), max(inside), min(n for _, n in threads()))
"""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    host, scoped, before, inside, after = map(int, out.stdout.split())
    assert scoped <= 2  # clock ticks (10 ms) of other threads during a 0.4 s sleep
    assert inside == 1 and after == before  # limited inside, restored after
    if (os.cpu_count() or 1) >= 2:  # the control: the host's own products stay threaded
        assert before >= 2 and host >= 5


def test_blas_is_limited_from_any_thread_not_only_the_first_that_asked(tmp_path):
    # a run limits BLAS from its render thread: threadpoolctl's OpenBLAS setter obeys only the
    # first Python thread that ever called it (here the main thread, one frame annotated before
    # the run), and silently ignored the render thread, leaving BLAS threaded during the run
    import os
    import subprocess
    import sys

    code = """
import threading
import numpy as np, cv2
from liveheat._common.blas import one_blas_thread, threads
with one_blas_thread():  # the main thread first
    pass
seen = []
def render():
    with one_blas_thread():
        seen.append([n for _, n in threads()])
t = threading.Thread(target=render)
t.start(); t.join()
print(max(seen[0]), min(n for _, n in threads()))
"""
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    inside, after = map(int, out.stdout.split())
    assert inside == 1
    if (os.cpu_count() or 1) >= 2:
        assert after >= 2  # restored


def test_eigen_with_a_classifier_of_another_layer(cat):
    # maps whose channels do not match the classifier: anchored to the channel mean, and a
    # target (which needs that classifier) is a clear error, not a shape error from deep inside
    part = dataclasses.replace(cat, maps=np.ascontiguousarray(cat.maps[:100]))
    eig = heatmap(part, "eigen")
    assert eig.shape == (7, 7) and np.isfinite(eig).all()
    assert corr(eig, heatmap(part, "mean")) > 0
    with pytest.raises(LiveheatError, match="classifier expects 1280 channels, layer has 100"):
        heatmap(part, "eigen", target=285)
