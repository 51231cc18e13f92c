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

    Args:
        None (reads ``$LIVEHEAT_MODELS``).

    Returns:
        The folder (it may not exist: `resolve_model` and `liveheat doctor` say what is missing).

    Raises:
        Nothing: the folder is found, not checked.

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

    Args:
        model: None or ``"fp32"`` (the bundled model), ``"int8"`` (its int8 twin), or the
            path of an .onnx file.

    Returns:
        The model file's `Path`.

    Raises:
        LiveheatError: a bundled model that is missing, a path that does not exist or is a
            folder, or a value of another type.

    Examples:
        >>> resolve_model(None).name
        'efficientnet_lite0.onnx'
        >>> resolve_model("int8").name                     # doctest: +SKIP
        'efficientnet_lite0_int8.onnx'
        >>> resolve_model("nowhere.onnx")
        Traceback (most recent call last):
        ...
        liveheat.errors.LiveheatError: model file 'nowhere.onnx' not found; ...
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
