"""Frames to input tensors: `Preprocessor` resizes, orders channels and normalises, in one pass.

x = (pixel * scale - mean) / std per channel, after a bilinear resize to the input size
(stretched or letterboxed), in the model's channel order and layout (N,C,H,W or N,H,W,C).
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from liveheat._common.images import as_bgr_u8
from liveheat._common.text import did_you_mean
from liveheat.errors import LiveheatError
from liveheat.model.features import Geometry
from liveheat.settings.config import MAX_INPUT_SIDE

RESIZES = ("stretch", "letterbox")
CHANNEL_ORDERS = ("RGB", "BGR")
# conventions assumed for a model that does not describe itself (torchvision's ImageNet ones)
DEFAULT_SCALE = 1.0 / 255.0
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = (224, 224)
_BLOB_PARAMS = hasattr(cv2.dnn, "blobFromImageWithParams")  # OpenCV >= 4.8
# dtypes cv2.resize takes as they are; the rest are made uint8 (as_bgr_u8) before resizing
_RESIZABLE = (np.uint8, np.uint16, np.float32, np.float64)


class Preprocessor:
    """Frames to one model's input tensor, with per-thread buffers reused call after call.

    A uint8 BGR frame into a 3-channel N,C,H,W model takes one fused OpenCV pass
    (`cv2.dnn.blobFromImageWithParams`: resize, channel swap, scale, mean, std). Other frames
    are resized, made uint8 BGR by `as_bgr_u8` (its rule for each dtype), then normalised.
    `Backbone` makes one from the model's metadata (`for_model`): `Backbone.preprocess`.

    Args:
        input_size: (H, W), a side or "H,W"; None: `default_size`. Rounded to `multiple`.
        mean: per channel in the model's channel order (one number: all three).
        std: per channel, like `mean`; non-zero.
        scale: x = (pixel * scale - mean) / std; non-zero.
        channel_order: "RGB" or "BGR", the order the model wants (frames are BGR).
        resize: "stretch" (aspect not kept) or "letterbox" (aspect kept, padded with the mean).
        antialias: when shrinking by 2x or more, a bilinear halving first (close to
            INTER_AREA, ~0.15 ms more on an HD frame); else one bilinear step.
        channels: the model's input channels, 3 or 1 (grey).
        channels_last: the model takes N,H,W,C instead of N,C,H,W.
        dtype: the input tensor's numpy dtype.
        default_size: the size used when `input_size` is None.
        fixed_size: the (H, W) of a model with a static input size (any other raises).
        multiple: sizes are rounded to a multiple of this (32 for the bundled models).
        model_name: how messages name the model.

    Raises:
        LiveheatError: a bad size, mean, std, scale, channel order or resize policy.

    Examples:
        >>> pre = Preprocessor(224)
        >>> blob, geo = pre(np.zeros((720, 1280, 3), np.uint8))
        >>> blob.shape, blob.dtype
        ((1, 3, 224, 224), dtype('float32'))
        >>> geo
        Geometry(frame_shape=(720, 1280), input_shape=(224, 224), pad=(0, 0, 0, 0))
        >>> Preprocessor(resize="zoom")
        Traceback (most recent call last):
        liveheat.errors.LiveheatError: bad resize 'zoom'; valid: stretch, letterbox
    """

    def __init__(
        self,
        input_size: int | tuple[int, int] | str | None = None,
        *,
        mean: float | tuple[float, ...] | str = DEFAULT_MEAN,
        std: float | tuple[float, ...] | str = DEFAULT_STD,
        scale: float | str = DEFAULT_SCALE,
        channel_order: str = "RGB",
        resize: str = "stretch",
        antialias: bool = False,
        channels: int = 3,
        channels_last: bool = False,
        dtype: type = np.float32,
        default_size: int | tuple[int, int] | str = DEFAULT_SIZE,
        fixed_size: tuple[int, int] | None = None,
        multiple: int = 1,
        model_name: str = "the model",
    ) -> None:
        self.channels = int(channels)
        self.channels_last = bool(channels_last)
        self.dtype = dtype
        self.model_name = model_name
        self.scale = _floats(scale, "scale")[0]
        self.mean = _floats(mean, "mean", 3)[: self.channels]
        self.std = _floats(std, "std", 3)[: self.channels]
        if self.scale == 0 or min(abs(v) for v in self.std) == 0:
            raise LiveheatError(f"bad std {self.std} / scale {self.scale}; they must be non-zero")
        order = str(channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise LiveheatError(f"bad channel order {order!r}; expected RGB or BGR")
        self.channel_order = order
        policy = str(resize).lower()
        if policy not in RESIZES:
            raise LiveheatError(
                f"bad resize {policy!r};{did_you_mean(policy, RESIZES, before=' ')} "
                "valid: stretch, letterbox"
            )
        self.resize = policy
        self.antialias = bool(antialias)
        self._default_size = default_size
        self._fixed = fixed_size
        self._multiple = int(multiple)
        self._lock = threading.Lock()
        self._tls = threading.local()  # per-thread input buffers
        self.input_size = input_size  # property: validates and rounds

    @classmethod
    def for_model(
        cls,
        metadata: dict[str, str],
        *,
        mean: float | tuple[float, ...] | str | None = None,
        std: float | tuple[float, ...] | str | None = None,
        scale: float | str | None = None,
        channel_order: str | None = None,
        resize: str | None = None,
        fixed_size: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> Preprocessor:
        """One model's preprocessing: the arguments, else its `liveheat.*` metadata, else
        defaults: ImageNet's mean, std and scale when neither states any of them, else
        neutral ones (0, 1, 1) for those not stated; the size from `liveheat.input_size`
        (rounded to 32), else the model's fixed size, else 224.

        Args:
            metadata: the model's metadata; `liveheat.input_size`, `.mean`, `.std`, `.scale`,
                `.channel_order` and `.resize` are read.
            mean, std, scale, channel_order, resize: as for `Preprocessor`; None:
                from the metadata.
            fixed_size: the model's static input size, if any.
            **kwargs: the rest of `Preprocessor`'s arguments (`input_size`, ...).

        Returns:
            The Preprocessor.

        Raises:
            LiveheatError: a bad value, given or in the metadata.

        Examples:
            >>> md = {"liveheat.mean": "127", "liveheat.std": "128", "liveheat.input_size": "300"}
            >>> pre = Preprocessor.for_model(md)
            >>> pre.mean, pre.std, pre.scale, pre.input_size
            ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0), 1.0, (288, 288))
            >>> Preprocessor.for_model({}).mean
            (0.485, 0.456, 0.406)
        """
        given = {"mean": mean, "std": std, "scale": scale}
        meta = {k: metadata.get(f"liveheat.{k}") for k in given}
        if all(v is None for v in (*given.values(), *meta.values())):
            defaults = {"mean": DEFAULT_MEAN, "std": DEFAULT_STD, "scale": DEFAULT_SCALE}
        else:  # a model or caller that states any of them: the rest are neutral
            defaults = {"mean": 0.0, "std": 1.0, "scale": 1.0}
        norm = {k: given[k] if given[k] is not None else meta[k] for k in given}
        norm = {k: defaults[k] if v is None else v for k, v in norm.items()}
        size = metadata.get("liveheat.input_size")
        return cls(
            **norm,
            channel_order=channel_order or metadata.get("liveheat.channel_order", "RGB"),
            resize=resize or metadata.get("liveheat.resize", "stretch"),
            default_size=size if size is not None else (fixed_size or DEFAULT_SIZE),
            fixed_size=fixed_size,
            multiple=32 if size is not None else 1,
            **kwargs,
        )

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the frame is resized to; settable (rounded like the constructor's)."""
        return self._input_size

    @input_size.setter
    def input_size(self, value: int | tuple[int, int] | str | None) -> None:
        size = _size(self._default_size if value is None else value, self._multiple)
        if self._fixed is not None and size != self._fixed:
            raise LiveheatError(
                f"{self.model_name} takes a fixed {self._fixed[0]}x{self._fixed[1]} "
                f"input; got input size {size[0]}x{size[1]} (leave the input size unset)"
            )
        with self._lock:
            self._input_size = size

    def __repr__(self) -> str:
        h, w = self._input_size
        return (
            f"Preprocessor(({h}, {w}), mean={self.mean}, std={self.std}, scale={self.scale}, "
            f"channel_order={self.channel_order!r}, resize={self.resize!r})"
        )

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """Frame -> input tensor + geometry; safe from several threads at once.

        Args:
            frame: an H x W (grey), H x W x 3 (BGR) or H x W x 4 (BGRA) image; dtypes other
                than uint8 are read by the rules of `as_bgr_u8`.

        Returns:
            (blob, geometry): the input tensor, shape (1, C, H, W) or (1, H, W, C) in the
            model's dtype, which may be a buffer reused by the next call from this thread
            (copy it to keep it); and how the frame sits in it (`Geometry`).

        Raises:
            LiveheatError: `frame` is not an image (not an array, empty, not 2-D or 3-D,
                2 or more than 4 channels, bool or a non-numeric dtype).

        Examples:
            >>> pre = Preprocessor(224, resize="letterbox")
            >>> blob, geo = pre(np.zeros((720, 1280, 3), np.uint8))
            >>> blob.shape, geo.pad
            ((1, 3, 224, 224), (49, 49, 0, 0))
            >>> pre(np.zeros((8, 8, 5), np.uint8))
            Traceback (most recent call last):
            liveheat.errors.LiveheatError: frame of shape (8, 8, 5) is not an image;
            expected HxW, HxWx3 (BGR) or HxWx4
        """
        frame = _check_frame(frame)
        fh, fw = frame.shape[:2]
        h, w = self._input_size
        nc = self.channels
        nhwc = self.channels_last
        blob_ok = nc == 3 and not nhwc and _BLOB_PARAMS
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
            small = as_bgr_u8(small) if nc == 3 else _grey_u8(small)
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
            blob = cv2.dnn.blobFromImageWithParams(small, _blob_params(self, w, h))
            if self.dtype is not np.float32:
                blob = blob.astype(self.dtype)
            return blob, Geometry((fh, fw), (h, w), pad)
        shape = (1, h, w, nc) if nhwc else (1, nc, h, w)
        blob = getattr(self._tls, "blob", None)  # one input buffer per calling thread
        if blob is None or blob.shape != shape:
            blob = self._tls.blob = np.empty(shape, np.float32)
        factor = [np.float32(self.scale / s) for s in self.std]
        offset = [np.float32(m / s) for m, s in zip(self.mean, self.std, strict=True)]
        for c in range(nc):  # one fused uint8 -> float32 pass per channel, into the buffer
            src = (nc - 1 - c) if self.channel_order == "RGB" else c
            dst = blob[0, :, :, c] if nhwc else blob[0, c]
            np.multiply(small[:, :, src], factor[c], out=dst)
            np.subtract(dst, offset[c], out=dst)
        if self.dtype is not np.float32:
            blob = blob.astype(self.dtype)
        return blob, Geometry((fh, fw), (h, w), pad)


def _blob_params(pre: Preprocessor, w: int, h: int):
    """cv2.dnn.Image2BlobParams for this preprocessing, made once (and again if changed)."""
    key = (pre.scale, tuple(pre.std), tuple(pre.mean), pre.channel_order, w, h)
    cached = pre.__dict__.get("_blob_cache")
    if cached is not None and cached[0] == key:
        return cached[1]
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = tuple(pre.scale / s for s in pre.std) + (0.0,)
    params.mean = tuple(m / pre.scale for m in pre.mean) + (0.0,)
    params.swapRB = pre.channel_order == "RGB"
    params.size = (w, h)
    params.ddepth = cv2.CV_32F
    pre._blob_cache = (key, params)  # one tuple swap: safe with concurrent callers
    return params


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


def _check_frame(frame) -> np.ndarray:
    """`frame` if it is an image the model can take (dtypes cv2.resize cannot take made
    uint8 by `as_bgr_u8`); LiveheatError naming what is wrong otherwise."""
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
    if frame.dtype not in _RESIZABLE:  # other ints, float16: one rule, as_bgr_u8's
        frame = as_bgr_u8(frame)
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


def _grey_u8(img: np.ndarray) -> np.ndarray:
    """A small resized image -> uint8 H x W x 1 grey (other dtypes by `as_bgr_u8`'s rules)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 or img.dtype != np.uint8:
        img = cv2.cvtColor(as_bgr_u8(img), cv2.COLOR_BGR2GRAY)  # grey -> BGR -> grey is exact
    return img[:, :, None]
