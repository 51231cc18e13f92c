"""The model room's front door: an ONNX CNN that turns frames into Features."""

from __future__ import annotations

import os
import warnings

import numpy as np
import onnxruntime as ort

from liveheat._common.text import _first_line, did_you_mean
from liveheat.errors import LiveheatError
from liveheat.model.bundled import resolve_model
from liveheat.model.features import Features, LayerInfo, effective_stride
from liveheat.model.graph import _Graph
from liveheat.model.head import find_head
from liveheat.model.layers import layer_list, pick_layer
from liveheat.model.layout import channels_last
from liveheat.model.onnxfile import _check_preprocessing_metadata, _labels, _load_onnx
from liveheat.model.preprocess import Preprocessor
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
            hint = did_you_mean(name, known, n=1) if full is None else ""
            missing.append(f"{name!r}" + (f" ({hint})" if hint else ""))
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


def _session(
    graph: _Graph,
    fetch: list[str],
    providers: list[str],
    threads: int | None,
    spinning: bool | None,
) -> ort.InferenceSession:
    """An onnxruntime session of the graph with `fetch` as its outputs."""
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
    payload = graph.with_outputs(fetch)
    try:
        return ort.InferenceSession(payload, sess_options=so, providers=providers)
    except Exception as e:  # onnxruntime raises its own (Fail, InvalidGraph, ...)
        raise LiveheatError(
            f"onnxruntime cannot load {graph.model_name}: {_first_line(e)}"
        ) from None


def _logits_size(graph: _Graph, logits: str | None) -> int | None:
    """How many scores the logits output holds, when its shape says so (else None)."""
    shp = graph.shape(logits) if logits else None
    return shp[-1] if shp and isinstance(shp[-1], int) and shp[-1] > 0 else None


def _delegate(name: str, doc: str) -> property:
    """A Backbone attribute that is its Preprocessor's `name` (read and written there)."""

    def get(self: Backbone):
        return getattr(self.preprocess, name)

    def put(self: Backbone, value) -> None:
        setattr(self.preprocess, name, value)

    return property(get, put, doc=doc)


class Backbone:
    """An ONNX CNN that turns frames into Features (feature map + class scores).

    Preprocessing comes from the model's `liveheat.*` metadata unless given here
    (`Preprocessor.for_model`). Safe to call from several threads at once.

    Args:
        model: None = the bundled EfficientNet-Lite0 fp32, "int8" = its int8 twin, else the
            path of an ONNX model with one image input (N,C,H,W or N,H,W,C; 1 or 3 channels).
        layer: the 4-D tensor the maps come from (see `layers()`); default: the map the
            classifier pools (where `cam` works), else the model's last 4-D output.
        providers: onnxruntime provider names ("cuda" or "CUDAExecutionProvider"); those
            unavailable here fall back to CPU with a warning.
        threads: onnxruntime intra-op threads, 1 to `MAX_THREADS`; default: its own choice.
        input_size, mean, std, scale, channel_order, resize: as for `Preprocessor`
            (x = (pixel * scale - mean) / std); None: from the model's metadata.
        spinning: False stops idle onnxruntime worker threads spinning (use it when the
            session runs inside a threaded pipeline).
        antialias: average first when shrinking by 2x or more (closer to INTER_AREA on HD
            video, ~0.15 ms more per frame).

    Attributes:
        preprocess: the `Preprocessor`: ``bb.preprocess(frame) -> (blob, Geometry)``.
        model_path, metadata, labels, layer, head_layer, providers, session: what was
            loaded; `input_size`, `mean`, `std`, `scale`, `channel_order`, `resize`,
            `antialias`: the preprocessing's.

    Raises:
        LiveheatError: a missing or unreadable model, a model liveheat cannot run (no image
            input, several inputs), an unknown or non-4-D layer, bad preprocessing values.

    Examples:
        >>> bb = Backbone()                                # the bundled fp32 model
        >>> bb.input_size, bb.layer, bb.head_layer
        ((224, 224), 'features', 'features')
        >>> feats = bb(np.full((480, 640, 3), 127, np.uint8))
        >>> feats.maps.shape, feats.logits.shape
        ((1280, 7, 7), (1000,))
        >>> Backbone(layer="featurs")                      # doctest: +ELLIPSIS
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: unknown layer 'featurs'; did you mean 'features'...
    """

    preprocess: Preprocessor

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
        proto = _load_onnx(self.model_path)
        self.metadata = {p.key: p.value for p in proto.metadata_props}
        self._graph = _Graph(proto, self.model_path.name)
        g = self._graph
        md = self.metadata

        self._input_name, nhwc, in_channels, static_hw, in_dtype = g.image_input()
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
        self.labels = _labels(md, self.model_path.name, _logits_size(g, self._logits_name))
        self._check_labels = self.labels is not None and "liveheat.labels" in md
        self._head = find_head(g, self._logits_name) if self._logits_name else None
        self._layers = layer_list(g)
        self.layer = pick_layer(g, self._layers, layer, md, self._head)
        self._maps_nhwc = channels_last(g, self.layer, self._input_name, nhwc)
        self._probs_out = bool(self._logits_name) and g.producer_op(self._logits_name) == "Softmax"
        self.preprocess = Preprocessor.for_model(
            md,
            input_size=input_size,
            mean=mean,
            std=std,
            scale=scale,
            channel_order=channel_order,
            resize=resize,
            antialias=antialias,
            channels=in_channels,
            channels_last=nhwc,
            dtype=in_dtype,
            fixed_size=static_hw,
            model_name=self.model_path.name,
        )
        self.providers = _providers(providers)
        self._fetch = [self.layer] + ([self._logits_name] if self._logits_name else [])
        self._session = _session(g, self._fetch, self.providers, threads, spinning)
        self.providers = self._session.get_providers()
        self._graph.release()
        if self._head is not None and self.layer in self._head.aliases:
            self._cam_weights = self._head.weights
            self._cam_weights.flags.writeable = False  # one array shared by every Features
        else:
            self._cam_weights = None

    # ------------------------------------------------------------------ properties
    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the frame is resized to; settable (rounded to 32 for the bundled model).

        A bad size, or another size for a model with a fixed input, raises LiveheatError.

        Examples:
            >>> bb = Backbone(input_size=300)
            >>> bb.input_size
            (288, 288)
            >>> bb.input_size = (224, 320); bb.input_size
            (224, 320)
        """
        return self.preprocess.input_size

    @input_size.setter
    def input_size(self, value: int | tuple[int, int] | str | None) -> None:
        self.preprocess.input_size = value

    mean = _delegate("mean", "per-channel mean, in the model's channel order")
    std = _delegate("std", "per-channel standard deviation, in the model's channel order")
    scale = _delegate("scale", "what a pixel is multiplied by before the mean is taken off")
    channel_order = _delegate("channel_order", '"RGB" or "BGR": the order the model wants')
    resize = _delegate("resize", '"stretch" or "letterbox"')
    antialias = _delegate("antialias", "whether big downscales average first")

    @property
    def session(self) -> ort.InferenceSession:
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
    def __call__(self, frame: np.ndarray) -> Features:
        """Run the model on one frame and return its Features.

        Args:
            frame: a uint8 BGR frame (grey, BGRA, 16-bit and float are taken too: see
                `as_bgr_u8` for each dtype's rule).

        Returns:
            The `Features`: maps (C, h, w) float32 from `layer`, logits, labels, geometry.

        Raises:
            LiveheatError: `frame` is not an image, or the model fails on it.

        Examples:
            >>> bb = Backbone()
            >>> feats = bb(np.zeros((720, 1280, 3), np.uint8))
            >>> feats.maps.shape, feats.maps.dtype, feats.frame_shape, feats.valid
            ((1280, 7, 7), dtype('float32'), (720, 1280), (0.0, 7.0, 0.0, 7.0))
            >>> bb(np.zeros((8, 8, 5), np.uint8))          # doctest: +ELLIPSIS
            Traceback (most recent call last):
            liveheat.errors.LiveheatError: frame of shape (8, 8, 5) is not an image; ...
        """
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

        Returns:
            `LayerInfo` (name, op_type, shape with symbolic dims) for each, a new list.

        Examples:
            >>> layers = Backbone().layers()
            >>> len(layers), layers[0].name
            (91, 'stem/conv')
            >>> layers[-1]
            LayerInfo(name='features', op_type='Clip',
                      shape=('batch', 1280, 'height_32', 'width_32'))
        """
        return list(self._layers)


def layers_table(bb: Backbone) -> str:
    """`bb.layers()` as an aligned text table; marks the default layer and the CAM layer.

    Args:
        bb: the Backbone whose layers to list.

    Returns:
        The table (what `liveheat layers MODEL` prints), one line per layer and a summary.

    Raises:
        Nothing of its own (it reads the layers `bb` already found).

    Examples:
        >>> print(layers_table(Backbone()))
        name                   op    shape                                note
        stem/conv              Conv  batch x 32 x unk__0 x unk__1
        ...
        features               Clip  batch x 1280 x height_32 x width_32  default, cam
        91 layers in efficientnet_lite0.onnx; pick one with --layer NAME
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
