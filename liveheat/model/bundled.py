"""The bundled models: where they live (inside the package) and how a name becomes a path."""

from __future__ import annotations

import os
from pathlib import Path

from liveheat.errors import LiveheatError

BUNDLED = {"fp32": "efficientnet_lite0.onnx", "int8": "efficientnet_lite0_int8.onnx"}
EXPORT_SCRIPT = "scripts/export_efficientnet_lite0.py"


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
