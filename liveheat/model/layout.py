"""Where a layer keeps its channels: N,C,H,W or N,H,W,C, read from the ops that made it."""

from __future__ import annotations

from liveheat.model.graph import _VALUE_PASS, _Graph

# ops whose 4-D output is N,C,H,W by the ONNX spec ...
_CHANNELS_FIRST_OPS = {
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "FusedConv", "BatchNormalization",
    "InstanceNormalization", "LRN", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "GlobalLpPool", "QLinearAveragePool", "QLinearGlobalAveragePool",
    "DepthToSpace", "SpaceToDepth", "MaxUnpool", "MaxRoiPool", "RoiAlign",
}  # fmt: skip
# ... and ops whose output keeps the layout of their (first non-constant 4-D) input
_LAYOUT_KEEPING_OPS = _VALUE_PASS | {
    "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "LeakyRelu", "PRelu", "Elu",
    "Selu", "Celu", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Erf", "Exp",
    "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Add", "Sub", "Mul",
    "Div", "Pow", "Max", "Min", "Sum", "Mean", "Where", "Dropout", "Concat", "Pad", "Resize",
    "Upsample", "Slice", "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu",
}  # fmt: skip


def channels_last(graph: _Graph, name: str, input_name: str, input_nhwc: bool) -> bool:
    """Whether the 4-D tensor `name` is N,H,W,C, decided for this layer, in this order:
    the ops that made it (Conv, pooling, normalisation: N,C,H,W; a Transpose moves the
    channel axis; elementwise ops and activations keep it), then which pair of its dims has
    the input's H:W ratio, then a fixed last dim after a free second one, then the input's
    layout.

    Args:
        graph: the model's graph.
        name: the 4-D tensor.
        input_name: the image input.
        input_nhwc: whether the input is N,H,W,C.

    Returns:
        True for N,H,W,C (the maps are then transposed to C,h,w), False for N,C,H,W.

    Examples:
        >>> from onnx import TensorProto, helper
        >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 96, 3])
        >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        >>> node = helper.make_node("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])
        >>> graph = _Graph(helper.make_model(helper.make_graph([node], "nhwc", [x], [y])))
        >>> channels_last(graph, "x", "x", True), channels_last(graph, "y", "x", True)
        (True, False)
    """
    axis = _channel_axis(graph, name, input_name, input_nhwc)
    if axis is not None:
        return axis == 3
    shp = graph.shape(name)
    if shp is None or len(shp) != 4:
        return input_nhwc
    by_ratio = _layout_by_ratio(shp, graph.shape(input_name), input_nhwc)
    if by_ratio is not None:
        return by_ratio
    fixed = [isinstance(d, int) and d > 0 for d in shp]
    if fixed[3] and not fixed[1]:
        return True
    if fixed[1] and not fixed[3]:
        return False
    return input_nhwc


def _channel_axis(graph: _Graph, name: str, input_name: str, input_nhwc: bool) -> int | None:
    """1 or 3 when the ops that made `name` say where its channels are, else None."""
    steps = 0
    while steps < 10_000:  # a walk up one chain of ops, never a search of the graph
        steps += 1
        if name == input_name:
            return 3 if input_nhwc else 1
        node = graph.producers.get(name)
        if node is None:
            return None
        op = node.op_type
        if op in _CHANNELS_FIRST_OPS:
            return 1
        if op == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm is None or sorted(perm) != [0, 1, 2, 3]:
                return None
            before = _channel_axis(graph, node.input[0], input_name, input_nhwc)
            if before is None:  # the usual conversions, whatever came before
                before = {(0, 2, 3, 1): 1, (0, 3, 1, 2): 3}.get(tuple(perm))
            if before is None:
                return None
            after = perm.index(before)
            return after if after in (1, 3) else None
        if op not in _LAYOUT_KEEPING_OPS:
            return None
        data = [
            x
            for x in node.input
            if x and not graph._is_const(x) and len(graph.shape(x) or (0,) * 4) == 4
        ]
        if not data:
            return None
        name = data[0]
    return None


def _layout_by_ratio(shp: tuple, inp: tuple | None, input_nhwc: bool) -> bool | None:
    """N,H,W,C (True) or N,C,H,W (False) when only one reading of `shp` has the input's
    H:W ratio (within a stride's rounding); None when both or neither do."""
    if inp is None or len(inp) != 4:
        return None
    ih, iw = (inp[1], inp[2]) if input_nhwc else (inp[2], inp[3])
    if not all(isinstance(d, int) and d > 0 for d in (ih, iw)):
        return None

    def fits(h, w) -> bool:
        if not (isinstance(h, int) and isinstance(w, int) and 0 < h <= ih and 0 < w <= iw):
            return False
        return abs(h * iw / ih - w) <= 1 and abs(w * ih / iw - h) <= 1

    first, last = fits(shp[2], shp[3]), fits(shp[1], shp[2])
    return None if first == last else last
