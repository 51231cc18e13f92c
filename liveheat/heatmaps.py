"""The map room: turn Features into one 2D heatmap (cam, eigen, mean, max, norm, channel:K).

Also the temporal smoother that keeps video overlays from flickering.
"""

from __future__ import annotations

import difflib
import threading

import cv2
import numpy as np
import onnxruntime as ort

from liveheat.backbone import _QUIET_RUN, Features
from liveheat.errors import LiveheatError

METHODS: tuple[str, ...] = ("cam", "eigen", "mean", "max", "norm", "channel:K")
_SUBSAMPLE = 8  # map cells are split this finely when a fractional crop (letterbox) is cut off


def heatmap(features: Features, method: str = "cam", target: int | str | None = None) -> np.ndarray:
    """One 2D float32 map for a frame, cropped to the part of the map grid that covers the frame.

    `method`: "cam" (class activation map of `target`: index, name, or None = top-1),
    "eigen" (first principal component of the activations; its sign anchored to the CAM of
    `target`, with no target to the probability-weighted class CAM, without a classifier to
    the channel mean), "mean", "max", "norm" (L2 over channels), "channel:K".
    The result maps exactly onto the frame: `overlay(frame, heatmap(feats))` resizes it.
    CAM is ReLU'd (negative evidence -> 0); the other methods keep their sign.

    Examples:
        >>> feats = Backbone()(frame)                      # doctest: +SKIP
        >>> heatmap(feats).shape                           # doctest: +SKIP
        (7, 7)
        >>> heatmap(feats, "cam", target="espresso")       # doctest: +SKIP
        >>> heatmap(feats, "channel:12")                   # doctest: +SKIP
    """
    name, channel = _parse_method(method)
    maps = features.maps
    if maps.ndim != 3:
        raise LiveheatError(f"feature maps must be (C, h, w); got shape {maps.shape}")
    if name == "cam":
        heat = _cam(features, target)
    elif name == "eigen":
        heat = _eigen(features, target)
    elif name == "mean":
        heat = maps.mean(axis=0, dtype=np.float32)
    elif name == "max":
        heat = maps.max(axis=0)
    elif name == "norm":
        flat = maps.reshape(maps.shape[0], -1)
        heat = np.sqrt(np.einsum("ij,ij->j", flat, flat)).reshape(maps.shape[1:])
    else:
        if not 0 <= channel < maps.shape[0]:
            raise LiveheatError(
                f"channel {channel} out of range; layer {features.layer!r} has channels "
                f"0..{maps.shape[0] - 1}"
            )
        heat = maps[channel]
    return crop_valid(np.asarray(heat, dtype=np.float32), features.valid)


def _parse_method(method: str) -> tuple[str, int]:
    text = str(method).strip().lower()
    if text.startswith("channel"):
        _, sep, num = text.partition(":")
        try:
            if not sep:
                raise ValueError
            return "channel", int(num)
        except ValueError:
            raise LiveheatError(
                f"bad method {method!r}; expected channel:K with a channel number, e.g. channel:0"
            ) from None
    if text in METHODS:
        return text, -1
    near = [m for m in METHODS if sorted(m) == sorted(text)]  # swapped letters: "cma"
    near = near or difflib.get_close_matches(text, METHODS, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ";"
    raise LiveheatError(f"unknown method {method!r}{hint} valid: {', '.join(METHODS)}")


def target_index(features: Features, target: int | str | None) -> int:
    """The class index a CAM explains: None = top-1, an index, its digits, or a class name.

    Examples:
        >>> target_index(feats, "espresso")                # doctest: +SKIP
        967
    """
    if features.logits is None:
        raise LiveheatError(
            f"layer {features.layer!r} comes from a model without class scores, so there is "
            "no target class; use method 'eigen' or 'mean'"
        )
    k = features.logits.size
    if target is None:
        return int(np.argmax(features.logits))
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        target = int(target.strip())
    if isinstance(target, (int, np.integer)):
        if not 0 <= target < k:
            raise LiveheatError(f"target class {target} out of range; expected 0..{k - 1}")
        return int(target)
    wanted = str(target).strip().lower()
    names = [n.lower() for n in features.labels or []]
    for i, n in enumerate(names):  # exact name, then exact synonym ("tabby, tabby cat")
        if n == wanted:
            return i
    for i, n in enumerate(names):
        if wanted in (s.strip() for s in n.split(",")):
            return i
    near = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(x) for x in near)}?" if near else ";"
    raise LiveheatError(
        f"unknown target class {target!r}{hint} give a class index 0..{k - 1} or an exact name"
    )


def _cam_raw(features: Features, target: int | str | None) -> np.ndarray:
    w = features.cam_weights
    if w is None:
        if features.head_layer is not None:
            why = (
                f"CAM needs the layer the classifier pools ({features.head_layer!r}); "
                f"the maps come from {features.layer!r}"
            )
        else:
            why = "the model has no GlobalAveragePool -> Gemm classifier head to take weights from"
        raise LiveheatError(f"method 'cam' unavailable: {why}; use method 'eigen' or 'mean'")
    c, h, wd = features.maps.shape
    if w.shape[1] != c:
        raise LiveheatError(f"classifier expects {w.shape[1]} channels, layer has {c}")
    t = target_index(features, target)
    # einsum, not `@`: BLAS would wake its thread pool for this one matrix-vector product
    return np.einsum("c,ci->i", w[t], features.maps.reshape(c, h * wd)).reshape(h, wd)


def _cam(features: Features, target: int | str | None) -> np.ndarray:
    return np.maximum(_cam_raw(features, target), 0)


def _eigen(features: Features, target: int | str | None) -> np.ndarray:
    c, h, w = features.maps.shape
    n = h * w
    a = np.ascontiguousarray(features.maps.reshape(c, n), dtype=np.float32)
    wv = _anchor_weights(features, target)
    if c * n * n <= _GRAM_WORK:
        # the whole fast path in one onnxruntime call (see _EigenGraph)
        if wv is None:
            logits = np.asarray(features.logits, np.float32).ravel()
            weights = np.asarray(features.cam_weights, np.float32)
            proj = _EIGEN_GRAPH.run(a, logits=logits, weights=weights)
        else:
            proj = _EIGEN_GRAPH.run(a, wv=wv)
        if proj is not None:
            return proj.reshape(h, w)
        # two near-equal top eigenvalues (rare): Lanczos
    anchor = _eigen_anchor(features, a, wv)
    u, lam = top_eigvec(a, anchor, centre=True)  # channels centred over the positions
    proj = (u * np.float32(np.sqrt(max(lam, 0.0)))).reshape(h, w)
    # the sign of an eigenvector is arbitrary: point it along the anchor
    if float(np.dot(proj.ravel(), anchor)) < 0:
        proj = -proj
    return proj


def _anchor_weights(features: Features, target: int | str | None) -> np.ndarray | None:
    """What EigenCAM's sign is anchored to: the map wv . maps for the returned wv (C,), or
    None for the softmax-weighted CAM of the 10 likeliest classes (classifier, no target).

    With a target, wv is its classifier row (its CAM); without a classifier, the channel
    mean. The top-10 CAM, unlike the top-1 CAM, does not jump when two near-equal classes
    swap places between frames.
    """
    c = features.maps.shape[0]
    classifier = features.cam_weights is not None and features.logits is not None
    fits = classifier and features.cam_weights.shape[1] == c  # else another layer's classifier
    if classifier and target is not None:
        if not fits:
            _cam_raw(features, target)  # raises the explanatory error
        return features.cam_weights[target_index(features, target)]
    if fits:
        return None
    return np.full(c, 1.0 / c, np.float32)


class _EigenGraph:
    """EigenCAM's fast path as one small ONNX graph, run by onnxruntime on the calling thread.

    Inputs: the maps `a` (C, N) and either the classifier (`logits` (K,), `weights` (K, C):
    the anchor is the softmax-weighted CAM of the 10 likeliest classes) or `wv` (C,) (the
    anchor is wv . a). In the graph: the channels centred over the positions (Ac), the centred
    Gram Ac' Ac, the anchor wv . Ac, then G^32 by five squarings (scaled by the trace, and
    rescaled once on the way so float32 neither underflows nor overflows), v = anchor . G^32
    normalised, its Rayleigh quotient lambda and residual. `run` returns the map
    v * sqrt(lambda), its sign pointing along the anchor, or None when the residual says the
    top eigenvalue is not separated enough (then Lanczos takes over).

    Why a graph: after an inference the caches are cold and each numpy call costs 10-40 us
    however small its data; the same steps as ~35 numpy calls took 0.35-0.5 ms, as one
    onnxruntime call about half that (scripts/bench_model.py). onnxruntime's MLAS GEMM also
    never wakes a BLAS thread pool.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, int], ort.InferenceSession] = {}

    def run(self, a, *, logits=None, weights=None, wv=None):
        if logits is not None:
            k = min(10, logits.shape[0])
            sess = self._session("topk", k)
            feeds = {"a": a, "logits": logits, "w": weights}
        else:
            sess = self._session("given", 0)
            feeds = {"a": a, "wv": np.asarray(wv, np.float32)}
        proj, ok = sess.run(None, feeds, _QUIET_RUN)
        return proj if ok else None  # not ok also when NaN (the anchor orthogonal to u)

    def _session(self, kind: str, k: int) -> ort.InferenceSession:
        sess = self._sessions.get((kind, k))
        if sess is None:
            with self._lock:
                sess = self._sessions.get((kind, k))
                if sess is None:
                    so = ort.SessionOptions()
                    so.intra_op_num_threads = 1  # tiny: the calling thread does it all
                    so.inter_op_num_threads = 1
                    so.log_severity_level = 4
                    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    sess = ort.InferenceSession(
                        _eigen_model(kind, k), so, providers=["CPUExecutionProvider"]
                    )
                    self._sessions[(kind, k)] = sess
        return sess


def _eigen_model(kind: str, k: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    f32 = TensorProto.FLOAT
    nodes, inits = [], []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind_: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(kind_, inputs, [out], **attrs))
        return out

    inputs = [helper.make_tensor_value_info("a", f32, ["C", "N"])]
    one = const("axis1", np.array([1], np.int64))
    ac = op("Sub", ["a", op("ReduceMean", ["a", one], "rowmean", keepdims=1)], "ac")
    if kind == "topk":
        inputs += [
            helper.make_tensor_value_info("logits", f32, ["K"]),
            helper.make_tensor_value_info("w", f32, ["K", "C"]),
        ]
        nodes.append(
            helper.make_node("TopK", ["logits", const("k", np.array([k], np.int64))], ["tv", "ti"])
        )
        e = op("Softmax", ["tv"], "e", axis=0)
        wv = op("MatMul", [e, op("Gather", ["w", "ti"], "wtop", axis=0)], "wvec")
    else:
        inputs.append(helper.make_tensor_value_info("wv", f32, ["C"]))
        wv = "wv"
    anchor = op("MatMul", [wv, ac], "anchor")  # (N,), centred since ac is
    gram = op("MatMul", [op("Transpose", [ac], "act", perm=[1, 0]), ac], "gram")
    p = op("Div", [gram, op("ReduceSumSquare", [ac], "trace", keepdims=0)], "p0")
    for i in range(1, 6):
        p = op("MatMul", [p, p], f"p{i}")
        if i == 2:  # top eigenvalue back to [1, N]: G^32 stays finite and nonzero in float32
            p = op("Div", [p, op("ReduceMax", [p], "pmax", keepdims=0)], "p2n")
    v0 = op("MatMul", [anchor, p], "v0")  # G^32 is symmetric
    v = op("Div", [v0, op("ReduceL2", [v0], "v0norm", keepdims=0)], "v")
    gv = op("MatMul", [v, gram], "gv")
    lam = op("ReduceSum", [op("Mul", [v, gv], "vgv")], "lam", keepdims=0)
    res = op("ReduceL2", [op("Sub", [gv, op("Mul", [v, lam], "lv")], "rv")], "res", keepdims=0)
    ok = op("LessOrEqual", [res, op("Mul", [lam, const("tol", np.float32(1e-4))], "tl")], "ok")
    # the sign of an eigenvector is arbitrary: point it along the anchor
    along = op("Less", [op("MatMul", [v, anchor], "dot"), const("zero", np.float32(0))], "neg")
    sign = op("Where", [along, const("minus", np.float32(-1)), const("plus", np.float32(1))], "sg")
    proj = op("Mul", [v, op("Mul", [op("Sqrt", [lam], "sl"), sign], "scale")], "proj")
    outputs = [
        helper.make_tensor_value_info(proj, f32, ["N"]),
        helper.make_tensor_value_info(ok, TensorProto.BOOL, []),
    ]
    graph = helper.make_graph(nodes, "liveheat_eigen", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model.SerializeToString()


_EIGEN_GRAPH = _EigenGraph()


def _eigen_anchor(features: Features, a: np.ndarray, wv: np.ndarray | None) -> np.ndarray:
    """The anchor map of `_anchor_weights` (float32, centred), in numpy: Lanczos's start."""
    if wv is None:
        # the softmax weights up to one positive factor, which changes neither the sign nor
        # the start direction
        logits = np.asarray(features.logits, np.float32).ravel()
        top = np.argpartition(logits, -10)[-10:] if logits.size > 10 else np.arange(logits.size)
        z = logits[top]
        wv = np.einsum("k,kc->c", np.exp(z - z.max()), features.cam_weights[top])
    anchor = np.einsum("c,ci->i", np.asarray(wv, np.float32), a)  # einsum: no BLAS call
    return anchor - anchor.mean()


# the N x N Gram is formed when C * N * N stays below about this many multiply-adds (1280
# channels: maps up to 11 x 11, i.e. inputs up to 352); above it, Lanczos without the Gram was
# faster (measured for 1280 x 14 x 14: 0.97 ms against 1.2 ms)
_GRAM_WORK = 24 * 1024 * 1024
_NUDGE: dict[int, np.ndarray] = {}  # per size: a fixed small vector added to start vectors


def _nudge(n: int) -> np.ndarray:
    v = _NUDGE.get(n)
    if v is None:
        v = _NUDGE[n] = 1e-3 * np.cos(np.arange(n))  # keeps a start never orthogonal to u
    return v


def top_eigvec(
    a: np.ndarray,
    start: np.ndarray | None = None,
    steps: int = 24,
    *,
    centre: bool = False,
) -> tuple[np.ndarray, float]:
    """Top eigenvector u and eigenvalue of the Gram matrix a.T @ a, for `a` (C, N).

    With `centre`, of the Gram of `a` with each row's mean removed (never materialised).

    Small N: the N x N Gram (one GEMM; centring is then a double centring of the Gram), and
    G^32 by five squarings when the top eigenvalue stands clear of the next (checked by its
    residual), else Lanczos with full reorthogonalisation on it. Large N: the Gram is never
    formed; Lanczos with two einsum matrix-vector products per step. No SVD and no `eigh`.
    Lanczos stops once the top pair has converged (residual below 1e-4 of the eigenvalue);
    exact when N <= steps. What costs on video is the number of numpy calls (each is slow with
    the caches that inference leaves cold), not the arithmetic: the fast path makes few.

    Examples:
        >>> a = np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32)
        >>> u, lam = top_eigvec(a)
        >>> bool(np.isclose(lam, np.linalg.eigvalsh(a.T @ a)[-1], rtol=1e-4))
        True
    """
    c, n = a.shape
    if c * n * n <= _GRAM_WORK:
        gram = cv2.gemm(a, a, 1.0, None, 0.0, flags=cv2.GEMM_1_T).astype(np.float64)
        if centre:  # J G J with J = I - 11'/n: G - r 1' - 1 r' + mean(r), r the row means
            r = gram.mean(axis=0)
            gram -= r[:, None] + (r - r.mean())
        fast = _power_by_squaring(gram, start)
        if fast is not None:
            return fast
        gram32 = gram.astype(np.float32)

        def matvec(q: np.ndarray) -> np.ndarray:
            return np.einsum("ij,j->i", gram32, q)

    else:
        mean = cv2.reduce(a, 1, cv2.REDUCE_AVG).ravel() if centre else None

        def matvec(q: np.ndarray) -> np.ndarray:
            t = np.einsum("ci,i->c", a, q)
            if mean is None:
                return np.einsum("ci,c->i", a, t)
            t -= mean * np.float32(q.sum())
            return np.einsum("ci,c->i", a, t) - np.float32(np.dot(mean, t))

    m = min(n, steps)
    q = np.ones(n, np.float32) if start is None else np.asarray(start, np.float32).copy()
    q += _nudge(n).astype(np.float32)
    q /= np.float32(np.sqrt(np.dot(q, q)))
    basis = np.zeros((m, n), np.float32)
    alpha: list[float] = []
    beta: list[float] = []
    for j in range(m):
        basis[j] = q
        v = matvec(q)
        alpha.append(float(np.dot(v, q)))
        done = basis[: j + 1]
        for _ in range(2):  # full reorthogonalisation, twice for float32
            v -= np.einsum("k,ki->i", np.einsum("ki,i->k", done, v), done)
        b = float(np.sqrt(np.dot(v, v)))
        if j == m - 1 or b <= 1e-6 * max(abs(alpha[0]), 1e-30):
            break
        if j >= 3 and j % 2 == 1:  # converged? residual of the top Ritz pair = b * |s[-1]|
            theta, s = _top_ritz(alpha, beta)
            if b * abs(s[-1]) <= 1e-4 * abs(theta):
                break
        beta.append(b)
        q = v / np.float32(b)
    theta, s = _top_ritz(alpha, beta)
    u = np.einsum("k,ki->i", s.astype(np.float32), basis[: len(alpha)])
    u /= np.float32(np.sqrt(np.dot(u, u)))
    return u, theta


def _power_by_squaring(
    gram: np.ndarray, start: np.ndarray | None, squarings: int = 5
) -> tuple[np.ndarray, float] | None:
    """Top eigenpair of a small symmetric PSD Gram from G^32 (five tiny matrix products that
    stay on this thread), or None when the top eigenvalue is not separated enough for that
    (then Lanczos takes over)."""
    n = gram.shape[0]
    g = np.asarray(gram, np.float64)
    # scaled to trace 1, every eigenvalue is in [0, 1]: the power neither overflows nor
    # underflows to zero in float64 (the top one is at least 1/n)
    p = np.linalg.matrix_power(g * (1.0 / max(float(np.trace(g)), 1e-300)), 2**squarings)
    v = p @ (_nudge(n) + (1.0 if start is None else start))
    norm = float(np.sqrt(v @ v))
    if not norm > 0:
        return None
    v /= norm
    gv = g @ v
    lam = float(v @ gv)
    gv -= lam * v
    if not lam > 0 or float(np.sqrt(gv @ gv)) > 1e-4 * lam:
        return None
    return v.astype(np.float32), lam


def _top_ritz(alpha: list[float], beta: list[float]) -> tuple[float, np.ndarray]:
    """Largest eigenvalue and its eigenvector of the Lanczos tridiagonal matrix."""
    k = len(alpha)
    tri = np.diag(np.asarray(alpha, np.float64))
    if k > 1:
        off = np.asarray(beta[: k - 1], np.float64)
        tri += np.diag(off, 1) + np.diag(off, -1)
    _, vals, vecs = cv2.eigen(tri)  # Jacobi on a k x k matrix: descending order, no BLAS
    return float(vals[0, 0]), vecs[0]


def crop_valid(heat: np.ndarray, valid: tuple[float, float, float, float]) -> np.ndarray:
    """Cut a map to `valid` (y0, y1, x0, x1) in grid units; fractional edges are cut exactly.

    Examples:
        >>> crop_valid(np.ones((7, 7), np.float32), (0, 7, 0, 7)).shape
        (7, 7)
    """
    h, w = heat.shape
    y0, y1, x0, x1 = (float(v) for v in valid)
    if (y0, y1, x0, x1) == (0.0, float(h), 0.0, float(w)):
        return heat
    if all(abs(v - round(v)) < 1e-6 for v in (y0, y1, x0, x1)):
        return heat[
            round(y0) : max(round(y1), round(y0) + 1), round(x0) : max(round(x1), round(x0) + 1)
        ]
    s = _SUBSAMPLE  # split cells so the fractional edges fall on the finer grid
    fine = cv2.resize(heat, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
    ya, yb = round(y0 * s), max(round(y1 * s), round(y0 * s) + 1)
    xa, xb = round(x0 * s), max(round(x1 * s), round(x0 * s) + 1)
    return np.ascontiguousarray(fine[ya:yb, xa:xb])


class TemporalSmoother:
    """Exponential moving average of video heatmaps and of their normalisation range.

    `factor` in [0, 1) is the weight of the past (0 = off). `.vmin/.vmax` follow the maps'
    range the same way: pass them to `overlay(norm="fixed", vmin=..., vmax=...)` so the
    colours do not pump. A scene cut restarts the average, as does a change of map size.
    Cuts are found by correlation below `cut_threshold` (None: never): of the pooled
    feature vectors when `features` are passed (reliable: consecutive frames of a shot
    correlate > 0.9, different scenes ~0), else of the map with the running map (weaker:
    CNN maps share a centre bias, and a CAM changes when the top-1 class changes).

    Examples:
        >>> smooth = TemporalSmoother(0.6)
        >>> for frame in frames:                           # doctest: +SKIP
        ...     feats = bb(frame)
        ...     heat = smooth(heatmap(feats), features=feats)
        ...     out = overlay(frame, heat, norm="fixed", vmin=smooth.vmin, vmax=smooth.vmax)
    """

    def __init__(self, factor: float = 0.6, *, cut_threshold: float | None = 0.5) -> None:
        factor = float(factor)
        if not 0.0 <= factor < 1.0:
            raise LiveheatError(f"bad smoothing factor {factor}; expected 0 <= factor < 1")
        self.factor = factor
        self.cut_threshold = cut_threshold
        self.cuts = 0  # scene cuts seen (resets triggered by the correlation test)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next map is passed through unchanged."""
        self._heat: np.ndarray | None = None
        self._pooled: np.ndarray | None = None
        self.vmin: float | None = None
        self.vmax: float | None = None

    def __call__(self, heat: np.ndarray, features: Features | None = None) -> np.ndarray:
        """Blend `heat` into the running map; return the smoothed map (float32, same shape).

        Examples:
            >>> TemporalSmoother(0.5)(np.ones((2, 2), np.float32)).tolist()
            [[1.0, 1.0], [1.0, 1.0]]
        """
        heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
        lo, hi = float(heat.min()), float(heat.max())
        pooled = None if features is None else features.maps.mean(axis=(1, 2))
        prev = self._heat
        if prev is not None and prev.shape != heat.shape:
            prev = None
        elif prev is not None and self._is_cut(prev, heat, pooled):
            self.cuts += 1
            prev = None
        self._pooled = pooled
        if prev is None or self.factor == 0.0:
            self._heat = heat.copy()
            self.vmin, self.vmax = lo, hi
            return heat
        f = np.float32(self.factor)
        out = prev * f
        out += heat * (np.float32(1) - f)
        self._heat = out
        self.vmin = self.factor * self.vmin + (1 - self.factor) * lo
        self.vmax = self.factor * self.vmax + (1 - self.factor) * hi
        return out.copy()

    def _is_cut(self, prev: np.ndarray, heat: np.ndarray, pooled: np.ndarray | None) -> bool:
        if self.cut_threshold is None:
            return False
        if pooled is not None and self._pooled is not None and pooled.shape == self._pooled.shape:
            r = _corr(self._pooled, pooled)
        else:
            r = _corr(prev, heat)
        return r is not None and r < self.cut_threshold


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two arrays; None when either is constant."""
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return None if den == 0.0 else float(np.dot(a, b)) / den
