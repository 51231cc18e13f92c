"""The layers a map can come from: every 4-D float activation of the graph, and the one used."""

from __future__ import annotations

from liveheat._common.text import did_you_mean
from liveheat.errors import LiveheatError
from liveheat.model.features import LayerInfo
from liveheat.model.graph import _FLOAT_TYPES, _Graph
from liveheat.model.head import _Head


def layer_list(graph: _Graph) -> list[LayerInfo]:
    """Every tensor that can serve as a feature map (4-D float activation), in graph order.

    Left out: maps pooled to one cell, and weights (Constants, dequantised initializers).

    Args:
        graph: the model's graph (before `release`).

    Returns:
        One `LayerInfo` (name, producing op, shape with symbolic dims) per tensor.

    Examples:
        >>> from liveheat.model.bundled import resolve_model
        >>> from liveheat.model.onnxfile import _load_onnx
        >>> layers = layer_list(_Graph(_load_onnx(resolve_model(None))))
        >>> len(layers), layers[0].name, layers[-1].name
        (91, 'stem/conv', 'features')
    """
    out = []
    seen = set()
    for node in graph.proto.graph.node:
        for name in node.output:
            if not name or name in seen or name in graph.inits:
                continue
            seen.add(name)
            shp = graph.shape(name)
            if shp is None or len(shp) != 4 or graph.elem_type(name) not in _FLOAT_TYPES:
                continue
            if shp[2] == 1 and shp[3] == 1:
                continue  # pooled to one cell: not a map
            if node.op_type == "Constant" or (
                node.op_type == "DequantizeLinear" and graph._is_const(node.input[0])
            ):
                continue  # weights, not activations
            out.append(LayerInfo(name, node.op_type, shp))
    return out


def pick_layer(
    graph: _Graph, layers: list[LayerInfo], layer: str | None, md: dict, head: _Head | None
) -> str:
    """The tensor the maps come from: `layer` checked, or the default for this model.

    Args:
        graph: the model's graph.
        layers: its `layer_list`.
        layer: a tensor name, a metadata alias (`liveheat.<alias>`), or None for the
            default: metadata `liveheat.feature_output`, else the tensor the classifier pools
            (a graph output carrying it first), else the last 4-D output, else the last layer.
        md: the model's metadata.
        head: its classifier head (`find_head`), or None.

    Returns:
        The tensor's name.

    Raises:
        LiveheatError: an unknown layer (the closest names are suggested), one that is not
            4-D or not float, or a model with no 4-D map at all.

    Examples:
        >>> from liveheat.model.bundled import resolve_model
        >>> from liveheat.model.onnxfile import _load_onnx
        >>> graph = _Graph(_load_onnx(resolve_model(None)))
        >>> layers = layer_list(graph)
        >>> pick_layer(graph, layers, None, {}, None), pick_layer(graph, layers, "stem", {}, None)
        ('features', 'stem')
        >>> pick_layer(graph, layers, "logits", {}, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: layer 'logits' is 2-D (shape ('batch', 1000), from Gemm);
        a feature map must be 4-D ...
    """
    if layer is None:
        return _default_layer(graph, layers, md, head)
    alias = md.get(f"liveheat.{layer}")
    if alias and alias in graph.producers and layer not in graph.producers:
        layer = alias
    if layer not in graph.producers:
        raise LiveheatError(
            f"unknown layer {layer!r};{did_you_mean(layer, graph.producers, n=5, before=' ')} "
            "list the layers with `liveheat layers MODEL`"
        )
    shp = graph.shape(layer)
    if shp is not None and len(shp) != 4:
        raise LiveheatError(
            f"layer {layer!r} is {len(shp)}-D (shape {shp}, from {graph.producer_op(layer)}); "
            "a feature map must be 4-D (N, C, H, W): pick one from `liveheat layers MODEL`"
        )
    etype = graph.elem_type(layer)
    if etype is not None and etype not in _FLOAT_TYPES:
        raise LiveheatError(
            f"layer {layer!r} holds {graph.type_name(etype)} values "
            "(a quantised copy); pick its float twin from `liveheat layers MODEL`"
        )
    return layer


def _default_layer(graph: _Graph, layers: list[LayerInfo], md: dict, head: _Head | None) -> str:
    for key in ("liveheat.feature_output",):
        name = md.get(key)
        if name and name in graph.producers:
            return name
    if head is not None:
        # prefer a graph output that carries the pooled tensor
        for name in graph.output_names:
            if name in head.aliases:
                return name
        return head.feature
    names = {x.name for x in layers}
    fours = [o for o in graph.output_names if o in names]
    if fours:
        return fours[-1]
    if layers:
        return layers[-1].name
    raise LiveheatError(
        "the model has no 4-D feature map to show; choose a layer with --layer "
        "(list them with `liveheat layers MODEL`)"
    )
