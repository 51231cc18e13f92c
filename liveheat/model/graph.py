"""Read-only questions about an ONNX graph: inputs, classifier head, layers, layouts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liveheat._common.text import _close, _first_line
from liveheat.errors import LiveheatError
from liveheat.model.features import LayerInfo

_FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}  # onnx TensorProto elem types
# ops that keep a tensor's values (quantisation round trips, renames) ...
_VALUE_PASS = {"Identity", "QuantizeLinear", "DequantizeLinear", "Cast"}
# ... and those that only reshape them between the pooled features and the classifier
_HEAD_PASS = _VALUE_PASS | {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout"}
# layout of a layer: ops whose 4-D output is N,C,H,W by the ONNX spec ...
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


@dataclass
class _Head:
    weights: np.ndarray  # (K, C) float32
    feature: str  # the float tensor the head pools
    aliases: set[str]  # names that carry the same values (quantise round trips, identities)


class _Graph:
    """Read-only questions about an ONNX graph (inputs, head, layers) plus adding outputs."""

    def __init__(self, proto, model_name: str = "the model") -> None:
        import onnx
        from onnx import shape_inference

        try:
            inferred = shape_inference.infer_shapes(proto)
        except Exception:  # unknown opset / custom ops: go on without inferred shapes
            inferred = proto
        self.proto = inferred
        self.model_name = model_name
        self.onnx = onnx
        g = inferred.graph
        self.inits = {t.name: t for t in g.initializer}
        self.producers = {}
        for node in g.node:
            for o in node.output:
                if o:
                    self.producers[o] = node
        self.types = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            known = self.types.get(vi.name)
            if vi.type.HasField("tensor_type") and (
                known is None or vi.type.tensor_type.HasField("shape")
            ):
                self.types[vi.name] = vi  # a declared output without a shape keeps the inferred one
        self.output_names = [o.name for o in g.output]
        self.layer_list = self._layer_list()

    def release(self) -> None:
        """Drop the proto (weights) once the session holds its own copy."""
        self.proto = None
        self.inits = {}

    # ---------------------------------------------------------------- types and shapes
    def elem_type(self, name: str) -> int | None:
        vi = self.types.get(name)
        return vi.type.tensor_type.elem_type if vi is not None else None

    def shape(self, name: str) -> tuple | None:
        vi = self.types.get(name)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            return None
        dims = []
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or "?")
        return tuple(dims)

    def producer_op(self, name: str) -> str | None:
        node = self.producers.get(name)
        return node.op_type if node is not None else None

    def _layer_list(self) -> list[LayerInfo]:
        out = []
        seen = set()
        for node in self.proto.graph.node:
            for name in node.output:
                if not name or name in seen or name in self.inits:
                    continue
                seen.add(name)
                shp = self.shape(name)
                if shp is None or len(shp) != 4 or self.elem_type(name) not in _FLOAT_TYPES:
                    continue
                if shp[2] == 1 and shp[3] == 1:
                    continue  # pooled to one cell: not a map
                if node.op_type == "Constant" or (
                    node.op_type == "DequantizeLinear" and self._is_const(node.input[0])
                ):
                    continue  # weights, not activations
                out.append(LayerInfo(name, node.op_type, shp))
        return out

    def _is_const(self, name: str) -> bool:
        if name in self.inits:
            return True
        node = self.producers.get(name)
        return node is not None and node.op_type == "Constant"

    # ---------------------------------------------------------------- input and outputs
    def image_input(self):
        g = self.proto.graph
        inputs = [i for i in g.input if i.name not in self.inits]
        images = [i for i in inputs if len(self.shape(i.name) or ()) == 4]
        if not images:
            desc = ", ".join(f"{i.name} {self.shape(i.name)}" for i in inputs) or "none"
            raise LiveheatError(
                f"the model has no image-like input (expected one 4-D N,C,H,W tensor; "
                f"inputs: {desc}); liveheat runs image CNNs"
            )
        if len(inputs) > 1:
            names = ", ".join(i.name for i in inputs)
            raise LiveheatError(
                f"the model needs {len(inputs)} inputs ({names}); liveheat feeds one image tensor"
            )
        inp = images[0]
        etype = self.elem_type(inp.name)
        if etype not in _FLOAT_TYPES:
            raise LiveheatError(
                f"input {inp.name!r} has element type "
                f"{self.onnx.TensorProto.DataType.Name(etype or 0)}; expected a float tensor"
            )
        shp = self.shape(inp.name)
        nhwc = shp[3] in (1, 3) and shp[1] not in (1, 3)
        channels = shp[3] if nhwc else shp[1]
        if not isinstance(channels, int):
            channels = 3
        if channels not in (1, 3):
            raise LiveheatError(
                f"input {inp.name!r} has {channels} channels (shape {shp}); expected 1 or 3"
            )
        hw = (shp[1], shp[2]) if nhwc else (shp[2], shp[3])
        static = hw if all(isinstance(d, int) and d > 0 for d in hw) else None
        return inp.name, nhwc, channels, static, _FLOAT_TYPES[etype]

    def channels_last(self, name: str, input_name: str, input_nhwc: bool) -> bool:
        """Whether the 4-D tensor `name` is N,H,W,C, decided for this layer, in this order:
        the ops that made it (Conv, pooling, normalisation: N,C,H,W; a Transpose moves the
        channel axis; elementwise ops and activations keep it), then which pair of its dims has
        the input's H:W ratio, then a fixed last dim after a free second one, then the input's
        layout."""
        axis = self._channel_axis(name, input_name, input_nhwc)
        if axis is not None:
            return axis == 3
        shp = self.shape(name)
        if shp is None or len(shp) != 4:
            return input_nhwc
        by_ratio = self._layout_by_ratio(shp, self.shape(input_name), input_nhwc)
        if by_ratio is not None:
            return by_ratio
        fixed = [isinstance(d, int) and d > 0 for d in shp]
        if fixed[3] and not fixed[1]:
            return True
        if fixed[1] and not fixed[3]:
            return False
        return input_nhwc

    def _channel_axis(self, name: str, input_name: str, input_nhwc: bool) -> int | None:
        """1 or 3 when the ops that made `name` say where its channels are, else None."""
        steps = 0
        while steps < 10_000:  # a walk up one chain of ops, never a search of the graph
            steps += 1
            if name == input_name:
                return 3 if input_nhwc else 1
            node = self.producers.get(name)
            if node is None:
                return None
            op = node.op_type
            if op in _CHANNELS_FIRST_OPS:
                return 1
            if op == "Transpose":
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm is None or sorted(perm) != [0, 1, 2, 3]:
                    return None
                before = self._channel_axis(node.input[0], input_name, input_nhwc)
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
                if x and not self._is_const(x) and len(self.shape(x) or (0,) * 4) == 4
            ]
            if not data:
                return None
            name = data[0]
        return None

    @staticmethod
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

    def logits_output(self, hint: str | None) -> str | None:
        if hint and hint in self.output_names:
            return hint
        for name in self.output_names:
            shp = self.shape(name)
            if shp is not None and len(shp) == 2 and self.elem_type(name) in _FLOAT_TYPES:
                if not isinstance(shp[1], int) or shp[1] > 1:
                    return name
        return None

    def with_outputs(self, names: list[str]) -> bytes:
        """The model serialised with `names` as its outputs (added in memory when missing)."""
        helper = self.onnx.helper
        g = self.proto.graph
        have = {o.name for o in g.output}
        for name in names:
            if name in have:
                continue
            vi = self.types.get(name)
            if vi is None:
                vi = helper.make_tensor_value_info(name, self.onnx.TensorProto.FLOAT, None)
            g.output.append(vi)
        return self.proto.SerializeToString()

    # ---------------------------------------------------------------- layer choice
    def pick_layer(self, layer: str | None, md: dict, head: _Head | None) -> str:
        layers = {x.name for x in self.layer_list}
        if layer is None:
            for key in ("liveheat.feature_output",):
                name = md.get(key)
                if name and name in self.producers:
                    return name
            if head is not None:
                # prefer a graph output that carries the pooled tensor
                for name in self.output_names:
                    if name in head.aliases:
                        return name
                return head.feature
            fours = [o for o in self.output_names if o in layers]
            if fours:
                return fours[-1]
            if self.layer_list:
                return self.layer_list[-1].name
            raise LiveheatError(
                "the model has no 4-D feature map to show; choose a layer with --layer "
                "(list them with `liveheat layers MODEL`)"
            )
        alias = md.get(f"liveheat.{layer}")
        if alias and alias in self.producers and layer not in self.producers:
            layer = alias
        if layer not in self.producers:
            raise LiveheatError(
                f"unknown layer {layer!r}{_close(layer, self.producers)} "
                "list the layers with `liveheat layers MODEL`"
            )
        shp = self.shape(layer)
        if shp is not None and len(shp) != 4:
            raise LiveheatError(
                f"layer {layer!r} is {len(shp)}-D (shape {shp}, from {self.producer_op(layer)}); "
                "a feature map must be 4-D (N, C, H, W): pick one from `liveheat layers MODEL`"
            )
        etype = self.elem_type(layer)
        if etype is not None and etype not in _FLOAT_TYPES:
            raise LiveheatError(
                f"layer {layer!r} holds {self.onnx.TensorProto.DataType.Name(etype)} values "
                "(a quantised copy); pick its float twin from `liveheat layers MODEL`"
            )
        return layer

    # ---------------------------------------------------------------- classifier head (CAM)
    def _back(self, name: str, passable: set[str], seen: set[str]) -> str:
        """Walk up through value-preserving ops; return the first other tensor."""
        while True:
            seen.add(name)
            node = self.producers.get(name)
            if node is None or node.op_type not in passable or not node.input:
                return name
            name = node.input[0]

    def _array(self, tensor, name: str) -> np.ndarray:
        """A TensorProto's values; LiveheatError naming it when its data is damaged."""
        from onnx import numpy_helper

        try:
            return numpy_helper.to_array(tensor)
        except Exception as e:  # cut raw data (reshape fails), bad dtype, missing external data
            raise LiveheatError(
                f"{self.model_name}: corrupt initializer {name!r} ({_first_line(e)}); "
                "the file is damaged: re-export or re-download the model"
            ) from None

    def const(self, name: str) -> np.ndarray | None:
        """Value of a constant tensor (initializer, Constant, or a dequantised initializer)."""
        if name in self.inits:
            return self._array(self.inits[name], name)
        node = self.producers.get(name)
        if node is None:
            return None
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return self._array(a.t, name)
            return None
        if node.op_type in ("Identity", "Cast") and node.input:
            return self.const(node.input[0])
        if node.op_type == "Transpose":
            x = self.const(node.input[0])
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            return None if x is None else np.transpose(x, perm)
        if node.op_type == "DequantizeLinear":
            x = self.const(node.input[0])
            scale = self.const(node.input[1]) if len(node.input) > 1 else None
            if x is None or scale is None:
                return None
            zp = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            x = x.astype(np.float32)
            scale = scale.astype(np.float32)
            zp = np.zeros_like(scale) if zp is None else zp.astype(np.float32)
            if scale.ndim == 1 and scale.size > 1:  # per-channel along `axis`
                shape = [1] * x.ndim
                shape[axis] = scale.size
                scale, zp = scale.reshape(shape), zp.reshape(shape)
            return (x - zp) * scale
        return None

    def head(self, logits: str) -> _Head | None:
        """Classifier weights (K, C) and the tensor they pool: logits <- Gemm/MatMul <- GAP <- x."""
        seen: set[str] = set()
        t = self._back(logits, _HEAD_PASS | {"Softmax"}, seen)
        node = self.producers.get(t)
        if node is None:
            return None
        if node.op_type == "Add":  # MatMul + bias
            ins = [i for i in node.input if self.const(i) is None]
            if len(ins) != 1:
                return None
            node = self.producers.get(self._back(ins[0], _HEAD_PASS, seen))
            if node is None:
                return None
        weights = None
        if node.op_type == "Gemm" and len(node.input) >= 2:
            attrs = {a.name: a for a in node.attribute}
            if "transA" in attrs and attrs["transA"].i:
                return None
            w = self.const(node.input[1])
            if w is not None and w.ndim == 2:
                weights = w if ("transB" in attrs and attrs["transB"].i) else w.T
                if "alpha" in attrs:
                    weights = weights * attrs["alpha"].f
        elif node.op_type == "MatMul" and len(node.input) == 2:
            w = self.const(node.input[1])
            if w is not None and w.ndim == 2:
                weights = w.T
        elif node.op_type == "Conv" and len(node.input) >= 2:  # 1x1 conv classifier
            w = self.const(node.input[1])
            if w is not None and w.ndim == 4 and w.shape[2:] == (1, 1):
                weights = w[:, :, 0, 0]
        if weights is None:
            return None
        pooled = self._back(node.input[0], _HEAD_PASS, seen)
        gap = self.producers.get(pooled)
        if gap is None or not self._is_global_pool(gap):
            return None
        aliases: set[str] = set()
        feature = self._back(gap.input[0], _VALUE_PASS, aliases)
        for other in self.proto.graph.node:  # sibling dequantised copies of the same values
            if other.op_type == "DequantizeLinear" and other.input[0] in aliases:
                aliases.update(o for o in other.output if o)
        return _Head(np.ascontiguousarray(weights, dtype=np.float32), feature, aliases)

    def _is_global_pool(self, node) -> bool:
        if node.op_type in ("GlobalAveragePool",):
            return True
        if node.op_type == "ReduceMean":
            axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
            if axes is None and len(node.input) > 1 and node.input[1]:
                val = self.const(node.input[1])
                axes = None if val is None else [int(v) for v in np.ravel(val)]
            return axes is not None and len(axes) == 2
        return False
