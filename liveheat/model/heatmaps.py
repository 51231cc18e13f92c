"""Features to a 2D map: the methods (cam, eigen, mean, max, norm, channel:K) and cropping."""

from __future__ import annotations

import cv2
import numpy as np

from liveheat._common.blas import blas_scoped
from liveheat._common.text import did_you_mean
from liveheat.errors import LiveheatError
from liveheat.model.eigen import _EIGEN_GRAPH, _GRAM_WORK, _eigen_anchor, top_eigvec
from liveheat.model.features import Features
from liveheat.settings.rules import METHODS

#: targets that mean "the top class" for one frame (on video `auto` is held: model.stability)
VIDEO_TARGETS = ("auto", "top1")
_SUBSAMPLE = 8  # map cells are split this finely when a fractional crop (letterbox) is cut off


@blas_scoped
def heatmap(features: Features, method: str = "cam", target: int | str | None = None) -> np.ndarray:
    """One 2D float32 map for a frame, cropped to the part of the map grid that covers the frame.

    The result maps exactly onto the frame: `overlay(frame, heatmap(feats))` resizes it.
    CAM is ReLU'd (negative evidence -> 0); the other methods keep their sign.

    Args:
        features: what `Backbone(frame)` returned.
        method: "cam" (class activation map of `target`), "eigen" (first principal component
            of the activations; its sign anchored to the CAM of `target`, with no target to
            the probability-weighted class CAM, without a classifier to the channel mean),
            "mean", "max", "norm" (L2 over channels) or "channel:K" (channel K alone).
        target: the class `cam` and `eigen` explain: an index, its digits or a class name;
            None: the top-1 class.

    Returns:
        (h, w) float32, the map grid cut to `features.valid`.

    Raises:
        LiveheatError: an unknown method or target, a channel out of range, or `cam` where
            the layer is not the one the classifier pools (or there is no classifier).

    Examples:
        >>> import liveheat
        >>> src = liveheat.open_source(liveheat.bundled_clip())
        >>> frame = [f.image for f, _ in zip(src, range(56))][55]  # an albatross
        >>> src.close()
        >>> feats = liveheat.Backbone()(frame)
        >>> heat = heatmap(feats)                          # CAM of the top-1: albatross
        >>> heat.shape, heat.dtype, bool(heat.min() >= 0)
        ((7, 7), dtype('float32'), True)
        >>> heatmap(feats, "cam", target="sea lion").shape, heatmap(feats, "channel:12").shape
        ((7, 7), (7, 7))
        >>> heatmap(feats, "cma")
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: unknown method 'cma'; did you mean 'cam'? valid: cam,
        eigen, mean, max, norm, channel:K
    """
    name, channel = _parse_method(method)
    if isinstance(target, str) and target.strip().lower() in VIDEO_TARGETS:
        target = None  # on one frame, the held target is that frame's top class
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
    hint = did_you_mean(text, METHODS, n=1, before=" ")
    raise LiveheatError(f"unknown method {method!r};{hint} valid: {', '.join(METHODS)}")


def target_index(features: Features, target: int | str | None) -> int:
    """The class index a CAM explains.

    Args:
        features: Features with class scores.
        target: None, "auto" or "top1" (the top-1 class: on one frame the held target is
            that), an index, its digits ("150"), or a class name: the
            whole name or one of its comma-separated synonyms, any case.

    Returns:
        The class index.

    Raises:
        LiveheatError: no class scores, an index out of range, or an unknown name (the
            closest names are suggested).

    Examples:
        >>> labels = ["tabby, tabby cat", "sea lion"]
        >>> feats = Features(np.zeros((1, 1, 1), np.float32), np.array([0.1, 2.0], np.float32),
        ...                  labels, "x", (1, 1), (0, 1, 0, 1), None)
        >>> target_index(feats, None), target_index(feats, "tabby cat"), target_index(feats, "0")
        (1, 0, 0)
        >>> target_index(feats, "sea loin")
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: unknown target class 'sea loin'; did you mean 'sea lion'?
        give a class index 0..1 or an exact name
    """
    if features.logits is None:
        raise LiveheatError(
            f"layer {features.layer!r} comes from a model without class scores, so there is "
            "no target class; use method 'eigen' or 'mean'"
        )
    k = features.logits.size
    if target is None or (isinstance(target, str) and target.strip().lower() in VIDEO_TARGETS):
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
    hint = did_you_mean(wanted, names, before=" ")
    raise LiveheatError(
        f"unknown target class {target!r};{hint} give a class index 0..{k - 1} or an exact name"
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


def crop_valid(heat: np.ndarray, valid: tuple[float, float, float, float]) -> np.ndarray:
    """Cut a map to `valid` (y0, y1, x0, x1) in grid units; fractional edges are cut exactly.

    Args:
        heat: an (h, w) map.
        valid: the part to keep, in cells (`Features.valid`); fractional edges (letterbox
            padding) are cut on a grid 8 times finer.

    Returns:
        The map itself when `valid` is all of it, a view for whole cells, else a new array.

    Examples:
        >>> crop_valid(np.ones((7, 7), np.float32), (0, 7, 0, 7)).shape
        (7, 7)
        >>> crop_valid(np.ones((9, 9), np.float32), (1.53125, 7.46875, 0, 9)).shape
        (48, 72)
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
