"""The model room: load an ONNX CNN, turn a frame into its input tensor, return Features.

Any 4-D tensor of any ONNX model can be the feature map; the classifier head is found for CAM.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import onnxruntime as ort

from liveheat.config import MAX_INPUT_SIDE, MAX_THREADS
from liveheat.errors import LiveheatError

BUNDLED = {"fp32": "efficientnet_lite0.onnx", "int8": "efficientnet_lite0_int8.onnx"}
EXPORT_SCRIPT = "scripts/export_efficientnet_lite0.py"
RESIZES = ("stretch", "letterbox")
CHANNEL_ORDERS = ("RGB", "BGR")
# conventions assumed for a model that does not describe itself (torchvision's ImageNet ones)
DEFAULT_SCALE = 1.0 / 255.0
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = (224, 224)

_QUIET_RUN = ort.RunOptions()  # read-only once made: shared by every thread's run()
_QUIET_RUN.log_severity_level = 4
_BLOB_PARAMS = hasattr(cv2.dnn, "blobFromImageWithParams")  # OpenCV >= 4.8
_FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}  # onnx TensorProto elem types
# ops that keep a tensor's values (quantisation round trips, renames) ...
_VALUE_PASS = {"Identity", "QuantizeLinear", "DequantizeLinear", "Cast"}
# ... and those that only reshape them between the pooled features and the classifier
_HEAD_PASS = _VALUE_PASS | {"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout"}
# `liveheat.*` metadata keys that describe preprocessing; a model that states one states these
_PREPROCESSING_KEYS = ("input_size", "mean", "std", "scale", "channel_order", "resize")
_REQUIRED_PREPROCESSING = ("input_size", "mean", "std", "channel_order")
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
class Features:
    """What one inference returns: a feature map, the class scores, and where the map sits.

    `maps` is (C, h, w) float32 from `layer`; `valid` is the (y0, y1, x0, x1) part of the
    map grid that covers the frame (letterbox padding and the overhang of a map rounded up
    past the input excluded, see `effective_stride`; may be fractional). `cam_weights` is
    read-only (one array shared by every call).

    Examples:
        >>> feats = Backbone()(frame)                      # doctest: +SKIP
        >>> feats.maps.shape, feats.top(1)                 # doctest: +SKIP
        ((1280, 7, 7), [(285, 'Egyptian cat', 0.62)])
    """

    maps: np.ndarray
    logits: np.ndarray | None
    labels: list[str] | None
    layer: str
    frame_shape: tuple[int, int]
    valid: tuple[float, float, float, float]
    cam_weights: np.ndarray | None
    head_layer: str | None = None  # the layer the classifier head pools (where CAM works)

    def probs(self) -> np.ndarray | None:
        """Softmax of the logits (float32, sums to 1), or None without a classifier.

        Examples:
            >>> feats.probs().sum()                        # doctest: +SKIP
            1.0
        """
        if self.logits is None:
            return None
        z = self.logits.astype(np.float32) - np.float32(self.logits.max())
        e = np.exp(z)
        return e / e.sum()

    def top(self, k: int = 5) -> list[tuple[int, str, float]]:
        """The k most likely classes as (index, name, probability), best first.

        Examples:
            >>> Backbone()(coffee).top(1)                  # doctest: +SKIP
            [(967, 'espresso', 0.96)]
        """
        p = self.probs()
        if p is None:
            return []
        k = max(0, min(int(k), p.size))
        idx = np.argsort(-p, kind="stable")[:k]
        return [(int(i), self.label(int(i)), float(p[i])) for i in idx]

    def label(self, index: int) -> str:
        """The class name of `index` (its number as text when the model has no names)."""
        if self.labels is not None and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)


class LayerInfo(NamedTuple):
    """One tensor that can serve as a feature map: name, producing op, shape (symbolic dims)."""

    name: str
    op_type: str
    shape: tuple


class Geometry(NamedTuple):
    """How a frame was fitted into the input: frame (H, W), input (H, W), pads (t, b, l, r)."""

    frame_shape: tuple[int, int]
    input_shape: tuple[int, int]
    pad: tuple[int, int, int, int]


@dataclass
class _Head:
    weights: np.ndarray  # (K, C) float32
    feature: str  # the float tensor the head pools
    aliases: set[str]  # names that carry the same values (quantise round trips, identities)


def models_dir() -> Path:
    """Where the bundled models live: `$LIVEHEAT_MODELS`, else `models/` beside the package.

    Examples:
        >>> models_dir().name                              # doctest: +SKIP
        'models'
    """
    env = os.environ.get("LIVEHEAT_MODELS")
    if env:
        return Path(env).expanduser()
    import liveheat

    return Path(liveheat.__file__).resolve().parent.parent / "models"


def resolve_model(model: str | os.PathLike | None) -> Path:
    """Turn `None` / `"fp32"` / `"int8"` / a path into an existing model file path.

    Examples:
        >>> resolve_model("int8").name                     # doctest: +SKIP
        'efficientnet_lite0_int8.onnx'
    """
    if model is None or (isinstance(model, str) and model.lower() in BUNDLED):
        variant = "fp32" if model is None else model.lower()
        path = models_dir() / BUNDLED[variant]
        if not path.is_file():
            raise LiveheatError(
                f"bundled model {path} is missing; regenerate it with `python {EXPORT_SCRIPT}` "
                "or point LIVEHEAT_MODELS at the folder that holds it"
            )
        return path
    if not isinstance(model, (str, os.PathLike)):
        raise LiveheatError(
            f"model must be a path, 'int8' or None (bundled), got {type(model).__name__}"
        )
    path = Path(model).expanduser()
    if not path.exists():
        raise LiveheatError(
            f"model file {str(path)!r} not found; expected an .onnx file "
            f"(or 'int8' / nothing for the bundled model)"
        )
    if not path.is_file():
        raise LiveheatError(f"model {str(path)!r} is a folder; expected an .onnx file")
    return path


def _close(name: str, names, n: int = 5) -> str:
    near = difflib.get_close_matches(name, list(names), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(repr(x) for x in near)}?" if near else ";"


def _floats(value, what: str, n: int | None = None) -> tuple[float, ...]:
    """'127,127,127' / 127 / (1, 2, 3) -> tuple of floats (length 1 broadcast to n)."""
    try:
        if isinstance(value, str):
            vals = tuple(float(x) for x in value.replace(";", ",").split(",") if x.strip())
        elif np.ndim(value) == 0:
            vals = (float(value),)
        else:
            vals = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise LiveheatError(
            f"bad {what} {value!r}; expected a number or numbers like 127,127,127"
        ) from None
    if not vals or (n is not None and len(vals) not in (1, n)):
        raise LiveheatError(f"bad {what} {value!r}; expected 1 or {n} numbers")
    if n is not None and len(vals) == 1:
        vals = vals * n
    return vals


def _size(value, multiple: int) -> tuple[int, int]:
    """int (square) / (H, W) / 'H,W' -> (H, W), rounded to `multiple`."""
    vals = _floats(value, "input size")
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0:
        raise LiveheatError(
            f"bad input size {value!r}; expected a side like 224 or H,W like 224,320"
        )
    if max(vals) > MAX_INPUT_SIDE:  # activations grow with its square: 8192 needs many GB
        raise LiveheatError(f"input size {value!r} too large; at most {MAX_INPUT_SIDE} a side")
    return tuple(max(multiple, int(round(v / multiple)) * multiple) for v in vals)  # type: ignore


def _providers(requested) -> list[str]:
    available = ort.get_available_providers()
    if requested is None:
        return ["CPUExecutionProvider"]
    if isinstance(requested, str):
        requested = [requested]
    known = ort.get_all_providers()
    short = {p.lower().removesuffix("executionprovider"): p for p in known}
    chosen, missing = [], []
    for name in requested:
        full = (
            name
            if name in known
            else short.get(str(name).lower().removesuffix("executionprovider"))
        )
        if full in available:
            if full not in chosen:
                chosen.append(full)
        else:
            hint = _close(str(name), known, 1) if full is None else ""
            missing.append(f"{name!r}" + (f" ({hint[2:]})" if len(hint) > 1 else ""))
    if missing:
        warnings.warn(
            f"onnxruntime provider {', '.join(missing)} not available here "
            f"(available: {', '.join(available)}); falling back to CPUExecutionProvider",
            RuntimeWarning,
            stacklevel=3,
        )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class Backbone:
    """An ONNX CNN that turns frames into Features (feature map + class scores).

    `model`: None = bundled EfficientNet-Lite0 fp32, "int8" = its int8 twin, else a path.
    `layer`: any 4-D tensor name (see `layers()`); default = the map the classifier pools.
    Preprocessing comes from the model's `liveheat.*` metadata unless given here:
    `input_size` (side or (H, W)), `mean`, `std`, `scale` (x = (pixel * scale - mean) / std),
    `channel_order` ("RGB"/"BGR"), `resize` ("stretch"/"letterbox"). Frames are resized with
    one bilinear step (the model card's preprocessing); `antialias=True` averages first when
    shrinking by 2x or more (closer to INTER_AREA on HD video, ~0.15 ms more per frame).
    `providers`: onnxruntime provider names (unavailable ones fall back to CPU with a warning);
    `threads`: intra-op threads; `spinning=False` stops idle worker threads spinning (use it
    when the session runs inside a threaded pipeline).

    Examples:
        >>> bb = Backbone()                                # bundled fp32 model
        >>> feats = bb(cv2.imread("cat.jpg"))              # doctest: +SKIP
        >>> feats.top(1)                                   # doctest: +SKIP
        [(285, 'Egyptian cat', 0.62)]
        >>> Backbone("resnet18.onnx", layer="/layer3/relu/Relu_output_0")  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        layer: str | None = None,
        providers: str | list[str] | None = None,
        threads: int | None = None,
        input_size: int | tuple[int, int] | str | None = None,
        mean: float | tuple[float, ...] | str | None = None,
        std: float | tuple[float, ...] | str | None = None,
        scale: float | None = None,
        channel_order: str | None = None,
        resize: str | None = None,
        spinning: bool | None = None,
        antialias: bool = False,
    ) -> None:
        self.model_path = resolve_model(model)
        self._lock = threading.Lock()
        proto = _load_onnx(self.model_path)
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self._graph = _Graph(proto, self.model_path.name)
        g = self._graph
        md = self.metadata

        self._input_name, self._nhwc, self._in_channels, static_hw, self._in_dtype = g.image_input()
        _check_preprocessing_metadata(
            md,
            self.model_path.name,
            given={
                "input_size": input_size,
                "mean": mean,
                "std": std,
                "channel_order": channel_order,
            },
        )
        self._logits_name = g.logits_output(md.get("liveheat.logits_output"))
        self.labels = _labels(md, self.model_path.name, self._logits_size())
        self._check_labels = self.labels is not None and "liveheat.labels" in md
        self._head = g.head(self._logits_name) if self._logits_name else None
        self.layer = g.pick_layer(layer, md, self._head)
        self._maps_nhwc = g.channels_last(self.layer, self._input_name, self._nhwc)
        self._probs_out = bool(self._logits_name) and g.producer_op(self._logits_name) == "Softmax"

        # preprocessing: arguments > metadata > defaults
        self._multiple = 32 if "liveheat.input_size" in md else 1
        self._static_hw = static_hw
        given = {"mean": mean, "std": std, "scale": scale}
        meta = {k: md.get(f"liveheat.{k}") for k in given}
        if all(v is None for v in (*given.values(), *meta.values())):
            defaults = {"mean": DEFAULT_MEAN, "std": DEFAULT_STD, "scale": DEFAULT_SCALE}
        else:  # a model or caller that states any of them: the rest are neutral
            defaults = {"mean": 0.0, "std": 1.0, "scale": 1.0}
        norm = {k: given[k] if given[k] is not None else meta[k] for k in given}
        norm = {k: defaults[k] if v is None else v for k, v in norm.items()}
        nc = self._in_channels
        self.scale = _floats(norm["scale"], "scale")[0]
        self.mean = _floats(norm["mean"], "mean", 3)[:nc]
        self.std = _floats(norm["std"], "std", 3)[:nc]
        if self.scale == 0 or min(abs(v) for v in self.std) == 0:
            raise LiveheatError(f"bad std {self.std} / scale {self.scale}; they must be non-zero")
        order = (channel_order or md.get("liveheat.channel_order", "RGB")).upper()
        if order not in CHANNEL_ORDERS:
            raise LiveheatError(f"bad channel order {order!r}; expected RGB or BGR")
        self.channel_order = order
        policy = (resize or md.get("liveheat.resize", "stretch")).lower()
        if policy not in RESIZES:
            raise LiveheatError(
                f"bad resize {policy!r}{_close(policy, RESIZES)} valid: stretch, letterbox"
            )
        self.resize = policy
        self.antialias = bool(antialias)
        self._tls = threading.local()  # per-thread preprocessing buffers
        self.input_size = input_size  # property: validates, rounds, allocates the input buffer

        # session
        self.providers = _providers(providers)
        # onnxruntime logs its own [E:onnxruntime...] lines even at ERROR (3); 4 = FATAL only, so
        # a bad model or a failing node reaches the user as our one LiveheatError line
        ort.set_default_logger_severity(4)
        so = ort.SessionOptions()
        so.log_severity_level = 4
        so.inter_op_num_threads = 1
        if threads is not None:
            if not 1 <= int(threads) <= MAX_THREADS:  # each is an OS thread, made at load
                raise LiveheatError(
                    f"bad threads {threads!r}; expected a whole number in [1, {MAX_THREADS}]"
                )
            so.intra_op_num_threads = int(threads)
        if spinning is False:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._fetch = [self.layer] + ([self._logits_name] if self._logits_name else [])
        payload = g.with_outputs(self._fetch)
        try:
            self._session = ort.InferenceSession(payload, sess_options=so, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own (Fail, InvalidGraph, ...)
            raise LiveheatError(
                f"onnxruntime cannot load {self.model_path.name}: {_first_line(e)}"
            ) from None
        self.providers = self._session.get_providers()
        self._graph.release()
        if self._head is not None and self.layer in self._head.aliases:
            self._cam_weights = self._head.weights
            self._cam_weights.flags.writeable = False  # one array shared by every Features
        else:
            self._cam_weights = None

    def _logits_size(self) -> int | None:
        """How many scores the logits output holds, when its shape says so (else None)."""
        shp = self._graph.shape(self._logits_name) if self._logits_name else None
        return shp[-1] if shp and isinstance(shp[-1], int) and shp[-1] > 0 else None

    # ------------------------------------------------------------------ properties
    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the frame is resized to; settable (rounded to 32 for the bundled model)."""
        return self._input_size

    @input_size.setter
    def input_size(self, value) -> None:
        if value is None:
            meta = self.metadata.get("liveheat.input_size")
            value = meta if meta is not None else (self._static_hw or DEFAULT_SIZE)
        size = _size(value, self._multiple)
        if self._static_hw is not None and size != self._static_hw:
            raise LiveheatError(
                f"{self.model_path.name} takes a fixed {self._static_hw[0]}x{self._static_hw[1]} "
                f"input; got input size {size[0]}x{size[1]} (leave the input size unset)"
            )
        with self._lock:
            self._input_size = size

    @property
    def session(self):
        """The onnxruntime InferenceSession (read-only use: options, providers, profiling)."""
        return self._session

    @property
    def head_layer(self) -> str | None:
        """The tensor the classifier pools (the layer where `cam` works), or None."""
        return self._head.feature if self._head else None

    def __repr__(self) -> str:
        h, w = self.input_size
        return (
            f"Backbone({self.model_path.name!r}, layer={self.layer!r}, input_size=({h}, {w}), "
            f"providers={self.providers})"
        )

    # ------------------------------------------------------------------ frames
    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """Frame (uint8 BGR; grey, BGRA, 16-bit, float accepted) -> input tensor + geometry.

        The returned tensor may be a buffer reused by the next call: copy it to keep it.

        Examples:
            >>> blob, geo = Backbone().preprocess(np.zeros((720, 1280, 3), np.uint8))
            >>> blob.shape, geo.pad
            ((1, 3, 224, 224), (0, 0, 0, 0))
        """
        frame = _check_frame(frame)
        fh, fw = frame.shape[:2]
        h, w = self._input_size
        nc = self._in_channels
        blob_ok = nc == 3 and not self._nhwc and _BLOB_PARAMS
        pad = (0, 0, 0, 0)
        if (
            blob_ok
            and self.resize == "stretch"
            and frame.dtype == np.uint8
            and frame.ndim == 3
            and frame.shape[2] == 3
            and (not self.antialias or fw < 2 * w or fh < 2 * h)
        ):
            small = frame  # blobFromImage resizes it: bilinear, the same as cv2.resize
        else:
            if self.resize == "stretch":
                small = _resize(frame, w, h, self.antialias)
            else:
                s = min(h / fh, w / fw)
                nw, nh = min(w, max(1, round(fw * s))), min(h, max(1, round(fh * s)))
                small = _resize(frame, nw, nh, self.antialias)
                top, left = (h - nh) // 2, (w - nw) // 2
                pad = (top, h - nh - top, left, w - nw - left)
            small = _to_uint8(small, nc)
            if any(pad):
                fill = [m / self.scale for m in self.mean]
                if self.channel_order == "RGB":
                    fill = fill[::-1]  # the frame is still BGR here
                small = cv2.copyMakeBorder(
                    small, *pad, cv2.BORDER_CONSTANT, value=fill + [0.0] * (4 - len(fill))
                )
                if small.ndim == 2:
                    small = small[:, :, None]
        if blob_ok:
            # one fused C++ pass: (resize,) channel swap, (x - mean/scale) * scale/std, NCHW
            blob = cv2.dnn.blobFromImageWithParams(small, self._blob_params(w, h))
            if self._in_dtype is not np.float32:
                blob = blob.astype(self._in_dtype)
            return blob, Geometry((fh, fw), (h, w), pad)
        shape = (1, h, w, nc) if self._nhwc else (1, nc, h, w)
        blob = getattr(self._tls, "blob", None)  # one input buffer per calling thread
        if blob is None or blob.shape != shape:
            blob = self._tls.blob = np.empty(shape, np.float32)
        factor = [np.float32(self.scale / s) for s in self.std]
        offset = [np.float32(m / s) for m, s in zip(self.mean, self.std, strict=True)]
        for c in range(nc):  # one fused uint8 -> float32 pass per channel, into the buffer
            src = (nc - 1 - c) if self.channel_order == "RGB" else c
            dst = blob[0, :, :, c] if self._nhwc else blob[0, c]
            np.multiply(small[:, :, src], factor[c], out=dst)
            np.subtract(dst, offset[c], out=dst)
        if self._in_dtype is not np.float32:
            blob = blob.astype(self._in_dtype)
        return blob, Geometry((fh, fw), (h, w), pad)

    def _blob_params(self, w: int, h: int):
        """cv2.dnn.Image2BlobParams for this preprocessing, made once (and again if changed)."""
        key = (self.scale, tuple(self.std), tuple(self.mean), self.channel_order, w, h)
        cached = self.__dict__.get("_blob_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        params = cv2.dnn.Image2BlobParams()
        params.scalefactor = tuple(self.scale / s for s in self.std) + (0.0,)
        params.mean = tuple(m / self.scale for m in self.mean) + (0.0,)
        params.swapRB = self.channel_order == "RGB"
        params.size = (w, h)
        params.ddepth = cv2.CV_32F
        self._blob_cache = (key, params)  # one tuple swap: safe with concurrent callers
        return params

    def __call__(self, frame: np.ndarray) -> Features:
        """Run the model on one frame and return its Features.

        Examples:
            >>> feats = Backbone()(frame)                  # doctest: +SKIP
            >>> feats.maps.shape                           # doctest: +SKIP
            (1280, 7, 7)
        """
        # safe to call from several threads at once: onnxruntime sessions run concurrently
        # and each thread preprocesses into its own buffer
        blob, geo = self.preprocess(frame)
        try:
            outs = self._session.run(self._fetch, {self._input_name: blob}, _QUIET_RUN)
        except Exception as e:
            raise LiveheatError(
                f"{self.model_path.name} failed on a {geo.input_shape[0]}x"
                f"{geo.input_shape[1]} input: {_first_line(e)}"
            ) from None
        maps = np.asarray(outs[0])
        if maps.ndim != 4:
            raise LiveheatError(
                f"layer {self.layer!r} gave a {maps.ndim}-D tensor {maps.shape}; a feature map "
                "must be 4-D (N, C, H, W): pick another with `liveheat layers MODEL`"
            )
        maps = maps[0]
        if self._maps_nhwc:
            maps = maps.transpose(2, 0, 1)
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        logits = None
        if len(outs) > 1:
            logits = np.asarray(outs[1], dtype=np.float32).reshape(-1)
            if self._probs_out:  # the model ends in Softmax: keep probs() exact
                logits = np.log(np.maximum(logits, np.float32(1e-30)))
            if self._check_labels and logits.size != len(self.labels):  # a symbolic class dim
                raise LiveheatError(
                    f"{self.model_path.name}: metadata liveheat.labels lists {len(self.labels)} "
                    f"classes but the model gives {logits.size} scores: re-export the model"
                )
        mh, mw = maps.shape[1:]
        (ih, iw), (t, b, left, r) = geo.input_shape, geo.pad
        # map cell j covers input pixels [j * stride, (j + 1) * stride): the overhang of a map
        # rounded up (300 px at stride 32 -> 10 cells = 320 px) and the letterbox are cut off
        sy, sx = effective_stride(ih, mh), effective_stride(iw, mw)
        valid = (
            min(t / sy, mh),
            min((ih - b) / sy, mh),
            min(left / sx, mw),
            min((iw - r) / sx, mw),
        )
        return Features(
            maps=maps,
            logits=logits,
            labels=self.labels,
            layer=self.layer,
            frame_shape=geo.frame_shape,
            valid=valid,
            cam_weights=self._cam_weights,
            head_layer=self.head_layer,
        )

    def layers(self) -> list[LayerInfo]:
        """Every tensor that can serve as a feature map (4-D float), in graph order.

        Examples:
            >>> [x.name for x in Backbone().layers()][-1]   # doctest: +SKIP
            'features'
        """
        return list(self._graph.layer_list)


def layers_table(bb: Backbone) -> str:
    """`bb.layers()` as an aligned text table; marks the default layer and the CAM layer.

    Examples:
        >>> print(layers_table(Backbone()))                # doctest: +SKIP
        name        op    shape                               note
        stem/conv   Conv  batch x 32 x unk__0 x unk__1
        ...
    """
    rows = [("name", "op", "shape", "note")]
    for info in bb.layers():
        notes = []
        if info.name == bb.layer:
            notes.append("default")
        if info.name == bb.head_layer or (info.name == bb.layer and bb._cam_weights is not None):
            notes.append("cam")
        rows.append(
            (info.name, info.op_type, " x ".join(str(d) for d in info.shape), ", ".join(notes))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    ]
    lines.append(f"{len(rows) - 1} layers in {bb.model_path.name}; pick one with --layer NAME")
    return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=256)
def effective_stride(size: int, cells: int) -> float:
    """Input pixels per map cell along one axis, from the input size and the map size.

    CNN maps have ceil(size / stride) cells (padded convs) or floor (unpadded), so the ratio
    alone misleads when the size is not a multiple of the stride: the whole-number strides that
    give `cells` either way are candidates; a power of two wins (CNN strides), else the one
    nearest the ratio. Maps as big as the input or bigger (upsampled) keep the plain ratio.

    Examples:
        >>> effective_stride(224, 7), effective_stride(300, 10), effective_stride(300, 19)
        (32, 32, 16)
        >>> effective_stride(300, 21), effective_stride(64, 128)   # ViT patch 14; upsampled
        (14, 0.5)
    """
    if size <= 0 or cells <= 0:
        return 1
    ratio = size / cells
    if ratio <= 1:
        return 1 if size == cells else ratio
    lo, hi = max(1, int(ratio / 2)), int(ratio * 2) + 1
    fits = [s for s in range(lo, hi + 1) if -(-size // s) == cells or size // s == cells]
    if not fits:
        return ratio
    powers = [s for s in fits if s & (s - 1) == 0]
    return min(powers or fits, key=lambda s: (abs(s - ratio), s))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else type(e).__name__
    return msg if len(msg) < 300 else msg[:300] + "..."


def _load_onnx(path: Path):
    import onnx

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise LiveheatError(f"cannot read model {str(path)!r}: {e.strerror}") from None
    if not data:
        raise LiveheatError(f"model {str(path)!r} is empty; expected an ONNX model file")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:
        raise LiveheatError(
            f"{str(path)!r} is not a readable ONNX model ({_first_line(e)}); "
            "the file may be truncated or another format: re-export or re-download it"
        ) from None
    if not proto.graph.node:
        raise LiveheatError(
            f"{str(path)!r} holds no ONNX graph; expected an ONNX model "
            "(truncated download or another format?)"
        )
    if any(t.data_location == 1 for t in proto.graph.initializer):  # external data
        try:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(proto, str(path.parent))
        except Exception as e:
            raise LiveheatError(
                f"cannot load the external weights of {path.name}: {_first_line(e)}"
            ) from None
    return proto


def _check_preprocessing_metadata(md: dict, model: str, given: dict) -> None:
    """A model that states any `liveheat.*` preprocessing key must state them all (what is
    missing would silently default: std 1, ImageNet size); arguments may fill the gaps."""
    stated = [k for k in _PREPROCESSING_KEYS if f"liveheat.{k}" in md]
    if not stated:
        return
    missing = [
        k for k in _REQUIRED_PREPROCESSING if f"liveheat.{k}" not in md and given.get(k) is None
    ]
    if missing:
        have = ", ".join(f"liveheat.{k}" for k in stated)
        need = ", ".join(f"liveheat.{k}" for k in _REQUIRED_PREPROCESSING)
        raise LiveheatError(
            f"{model}: metadata has {have} but no liveheat.{missing[0]}"
            + (f" (nor {', '.join('liveheat.' + k for k in missing[1:])})" if missing[1:] else "")
            + f"; a model that describes its preprocessing needs all of {need} (a cut or "
            f"hand-edited copy?): re-export it, or pass {missing[0]}=... to Backbone"
        )


def _labels(md: dict, model: str = "the model", n_logits: int | None = None) -> list[str] | None:
    """Class names from metadata: `liveheat.labels` must parse and match the logits' size;
    other exporters' `labels` / `names` are used only when they do."""
    for key in ("liveheat.labels", "labels", "names"):
        raw = md.get(key)
        if not raw:
            continue
        strict = key.startswith("liveheat.")
        val = _parse_labels(raw)
        if val is None or (n_logits is not None and len(val) != n_logits):
            if not strict:
                continue
            found = "cannot be read (cut short?)" if val is None else f"lists {len(val)} classes"
            raise LiveheatError(
                f"{model}: metadata liveheat.labels {found}; expected a JSON list of "
                f"{n_logits or 'the logits'} class names: re-export the model"
            )
        return val
    return None


def _parse_labels(raw: str) -> list[str] | None:
    try:
        val = json.loads(raw)
    except ValueError:
        import ast

        try:
            val = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(val, dict):
        try:
            val = [str(val[k]) for k in sorted(val, key=int)]
        except (TypeError, ValueError):
            return None
    if isinstance(val, (list, tuple)) and val:
        return [str(x) for x in val]
    return None


def _check_frame(frame) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise LiveheatError(f"frame must be a numpy image, got {type(frame).__name__}")
    if (
        frame.ndim not in (2, 3)
        or frame.size == 0
        or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4))
    ):
        raise LiveheatError(
            f"frame of shape {frame.shape} is not an image; expected HxW, HxWx3 (BGR) or HxWx4"
        )
    if frame.dtype == np.bool_ or frame.dtype.kind not in "uif":
        raise LiveheatError(f"frame dtype {frame.dtype} not supported; expected uint8 BGR")
    if frame.dtype.kind == "i" or frame.dtype in (np.uint32, np.uint64, np.float16):
        frame = frame.astype(np.float32)
    return frame


def _resize(img: np.ndarray, w: int, h: int, antialias: bool = False) -> np.ndarray:
    ih, iw = img.shape[:2]
    if (iw, ih) == (w, h):
        return img
    if antialias and iw >= 2 * w and ih >= 2 * h:
        # big downscale: bilinear to twice the size, then halve (bilinear at exactly 1/2 is a
        # 2x2 average): close to INTER_AREA (92 % same top-1 on the clip vs 70 % for one
        # bilinear step) at a quarter of its cost
        img = cv2.resize(img, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def _to_uint8(img: np.ndarray, channels: int) -> np.ndarray:
    """Small resized image -> uint8 HxWx`channels` in BGR (or grey) order."""
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = cv2.convertScaleAbs(img, alpha=1 / 257)
        else:  # float: [0, 1] or [0, 255]
            img = np.nan_to_num(img.astype(np.float32))
            top = float(img.max()) if img.size else 0.0
            img = np.clip(img * (255.0 if top <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if channels == 1:
        if img.ndim == 3:
            img = cv2.cvtColor(
                img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
            )
        return img[:, :, None]
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


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
