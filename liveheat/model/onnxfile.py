"""Reading an ONNX file and the `liveheat.*` metadata it carries (preprocessing, labels)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from liveheat._common.text import _first_line
from liveheat.errors import LiveheatError

_TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")

# `liveheat.*` metadata keys that describe preprocessing; a model that states one states these
_PREPROCESSING_KEYS = ("input_size", "mean", "std", "scale", "channel_order", "resize")
_REQUIRED_PREPROCESSING = ("input_size", "mean", "std", "channel_order")


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
        if os.path.splitext(str(path))[1].lower() in _TORCH_SUFFIXES:
            raise LiveheatError(
                f"{str(path)!r} is a PyTorch checkpoint, not an ONNX model; export it first "
                "(torch.onnx.export(model, example, 'model.onnx'); "
                "scripts/export_efficientnet_lite0.py shows how liveheat's own model was made)"
            ) from None
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
    except (ValueError, RecursionError):  # "[[[[...": json recurses once per bracket
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
