"""The model room's front door: an ONNX CNN that turns frames into Features."""

from __future__ import annotations

import os
import threading
import warnings

import cv2
import numpy as np
import onnxruntime as ort

from liveheat._common.text import _close, _first_line
from liveheat.errors import LiveheatError
from liveheat.model.bundled import resolve_model
from liveheat.model.features import Features, Geometry, LayerInfo, effective_stride
from liveheat.model.graph import _Graph
from liveheat.model.onnxfile import _check_preprocessing_metadata, _labels, _load_onnx
from liveheat.model.preprocess import (
    _BLOB_PARAMS,
    CHANNEL_ORDERS,
    DEFAULT_MEAN,
    DEFAULT_SCALE,
    DEFAULT_SIZE,
    DEFAULT_STD,
    RESIZES,
    _check_frame,
    _floats,
    _resize,
    _size,
    _to_uint8,
)
from liveheat.settings.config import MAX_THREADS

_QUIET_RUN = ort.RunOptions()  # read-only once made: shared by every thread's run()
_QUIET_RUN.log_severity_level = 4


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
