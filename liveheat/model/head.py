"""The classifier head of an ONNX graph: the weights CAM needs and the tensor they pool.

A head is `logits <- Gemm | MatMul (+ Add) | 1x1 Conv <- global average pool <- features`,
through any reshapes, renames and quantisation round trips between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveheat.model.graph import _VALUE_PASS, _Graph

# ops that only reshape values between the pooled features and the classifier
_HEAD_PASS = _VALUE_PASS | {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout"}


@dataclass
class _Head:
    weights: np.ndarray  # (K, C) float32
    feature: str  # the float tensor the head pools
    aliases: set[str]  # names that carry the same values (quantise round trips, identities)


def find_head(graph: _Graph, logits: str) -> _Head | None:
    """Classifier weights (K, C) and the tensor they pool: logits <- Gemm/MatMul <- GAP <- x.

    Args:
        graph: the model's graph.
        logits: the name of its class-score output.

    Returns:
        The head (weights, the pooled feature tensor, the names carrying the same values),
        or None when the graph has no such head (the `cam` method is then unavailable).

    Raises:
        LiveheatError: the classifier's weights are damaged.

    Examples:
        >>> from liveheat.model.bundled import resolve_model
        >>> from liveheat.model.onnxfile import _load_onnx
        >>> head = find_head(_Graph(_load_onnx(resolve_model(None))), "logits")
        >>> head.weights.shape, head.weights.dtype, head.feature
        ((1000, 1280), dtype('float32'), 'features')
    """
    seen: set[str] = set()
    t = _back(graph, logits, _HEAD_PASS | {"Softmax"}, seen)
    node = graph.producers.get(t)
    if node is None:
        return None
    if node.op_type == "Add":  # MatMul + bias
        ins = [i for i in node.input if graph.const(i) is None]
        if len(ins) != 1:
            return None
        node = graph.producers.get(_back(graph, ins[0], _HEAD_PASS, seen))
        if node is None:
            return None
    weights = _classifier_weights(graph, node)
    if weights is None:
        return None
    pooled = _back(graph, node.input[0], _HEAD_PASS, seen)
    gap = graph.producers.get(pooled)
    if gap is None or not _is_global_pool(graph, gap):
        return None
    aliases: set[str] = set()
    feature = _back(graph, gap.input[0], _VALUE_PASS, aliases)
    for other in graph.proto.graph.node:  # sibling dequantised copies of the same values
        if other.op_type == "DequantizeLinear" and other.input[0] in aliases:
            aliases.update(o for o in other.output if o)
    return _Head(np.ascontiguousarray(weights, dtype=np.float32), feature, aliases)


def _classifier_weights(graph: _Graph, node) -> np.ndarray | None:
    """(K, C) weights of a Gemm, MatMul or 1x1 Conv classifier node, else None."""
    if node.op_type == "Gemm" and len(node.input) >= 2:
        attrs = {a.name: a for a in node.attribute}
        if "transA" in attrs and attrs["transA"].i:
            return None
        w = graph.const(node.input[1])
        if w is None or w.ndim != 2:
            return None
        weights = w if ("transB" in attrs and attrs["transB"].i) else w.T
        if "alpha" in attrs:
            weights = weights * attrs["alpha"].f
        return weights
    if node.op_type == "MatMul" and len(node.input) == 2:
        w = graph.const(node.input[1])
        return w.T if w is not None and w.ndim == 2 else None
    if node.op_type == "Conv" and len(node.input) >= 2:  # 1x1 conv classifier
        w = graph.const(node.input[1])
        if w is not None and w.ndim == 4 and w.shape[2:] == (1, 1):
            return w[:, :, 0, 0]
    return None


def _back(graph: _Graph, name: str, passable: set[str], seen: set[str]) -> str:
    """Walk up through value-preserving ops; return the first other tensor."""
    while True:
        seen.add(name)
        node = graph.producers.get(name)
        if node is None or node.op_type not in passable or not node.input:
            return name
        name = node.input[0]


def _is_global_pool(graph: _Graph, node) -> bool:
    if node.op_type in ("GlobalAveragePool",):
        return True
    if node.op_type == "ReduceMean":
        axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            val = graph.const(node.input[1])
            axes = None if val is None else [int(v) for v in np.ravel(val)]
        return axes is not None and len(axes) == 2
    return False
