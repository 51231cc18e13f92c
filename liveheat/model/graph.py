"""Read-only questions about an ONNX graph: tensors, types, shapes, constants, inputs, outputs.

The questions with more to them live beside it: the classifier head (`head`), the layers a
map can come from (`layers`) and each layer's channel layout (`layout`).
"""

from __future__ import annotations

import numpy as np

from liveheat._common.text import _first_line
from liveheat.errors import LiveheatError

_FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}  # onnx TensorProto elem types
# ops that keep a tensor's values (quantisation round trips, renames)
_VALUE_PASS = {"Identity", "QuantizeLinear", "DequantizeLinear", "Cast"}


class _Graph:
    """Read-only questions about an ONNX graph (tensors, inputs, outputs) plus adding outputs."""

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

    def type_name(self, etype: int | None) -> str:
        """The ONNX name of an element type (FLOAT, UINT8, ...)."""
        return self.onnx.TensorProto.DataType.Name(etype or 0)

    # ---------------------------------------------------------------- constants
    def _is_const(self, name: str) -> bool:
        if name in self.inits:
            return True
        node = self.producers.get(name)
        return node is not None and node.op_type == "Constant"

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
                f"{self.type_name(etype)}; expected a float tensor"
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
