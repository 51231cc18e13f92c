"""The bundled models: where they live (inside the package) and how a name becomes a path.

They are package data: `liveheat/models` is a relative symlink to the repository's top-level
`models/` (where the export script writes and the model card lives), and the wheel carries
copies of the real files, so `importlib.resources` finds them in a checkout, an editable
install and a normal install alike.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from liveheat.errors import LiveheatError

BUNDLED = {"fp32": "efficientnet_lite0.onnx", "int8": "efficientnet_lite0_int8.onnx"}
EXPORT_SCRIPT = "scripts/export_efficientnet_lite0.py"


def models_dir() -> Path:
    """Where the bundled models live: `$LIVEHEAT_MODELS`, else the package's `models/` folder.

    The package folder is found with `importlib.resources` (in a checkout it is the symlink
    `liveheat/models -> ../models`). A checkout where that symlink did not become a folder
    (git on Windows without symlink support writes a small text file instead) falls back to
    the top-level `models/` beside the package.

    Returns:
        The folder (it may not exist: `resolve_model` and `liveheat doctor` say what is missing).

    Examples:
        >>> models_dir().name
        'models'
        >>> (models_dir() / BUNDLED["fp32"]).is_file()
        True
    """
    env = os.environ.get("LIVEHEAT_MODELS")
    if env:
        return Path(env).expanduser()
    package = Path(os.fspath(resources.files("liveheat")))
    inside = package / "models"
    if inside.is_file():  # a checkout whose symlink was written as a plain file
        return package.parent / "models"
    return inside


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
                f"bundled model {path} is missing; reinstall liveheat, regenerate it in a "
                f"checkout with `python {EXPORT_SCRIPT}`, or point LIVEHEAT_MODELS at the "
                "folder that holds it"
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
