"""EigenCAM's numerics: the top eigenvector of a feature map's Gram, fast and anchored."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import onnxruntime as ort

from liveheat.model.backbone import _QUIET_RUN
from liveheat.model.features import Features


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

    Args:
        a: (C, N) float32, e.g. C channels at N map positions.
        start: (N,) where the iteration starts (the eigenvector's sign follows it); default:
            a fixed vector.
        steps: at most this many Lanczos steps.
        centre: take the Gram of `a` with each row's mean removed.

    Returns:
        (u, eigenvalue): u the unit (N,) eigenvector, the eigenvalue as a float.

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
