"""Before a run: the backbone it needs and every setting checked on a tiny frame."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from liveheat._common.system import usable_cores
from liveheat.errors import LiveheatError
from liveheat.settings.fields import Settings
from liveheat.settings.rules import check_fixed_scale


def default_workers() -> int:
    """Inference workers for a recorded run: 2 on a machine with 2 or more cores, else 1.

    Two workers each running a small model on one thread keep two cores busy with less
    synchronisation than one session on two threads.

    Examples:
        >>> default_workers() in (1, 2)
        True
    """
    return 2 if usable_cores() >= 2 else 1


def default_threads(workers: int = 1) -> int:
    """onnxruntime threads per inference worker: the usable cores but one (decode, drawing
    and encoding run beside inference), shared by the workers; at least 1.

    Examples:
        >>> default_threads() >= 1 and default_threads(2) >= 1
        True
    """
    return max(1, (usable_cores() - 1) // max(1, workers))


def make_backbone(settings: Settings, *, live: bool = False) -> Any:
    """The Backbone a Runner would make for these settings (threads per `default_threads`).

    Examples:
        >>> bb = make_backbone(Settings(input_size=128))
        >>> bb.input_size
        (128, 128)
    """
    from liveheat.model.backbone import Backbone
    from liveheat.model.devices import providers_for

    workers = 1 if live else default_workers()
    return Backbone(
        settings.model,
        layer=settings.layer,
        threads=settings.threads or default_threads(workers),
        input_size=settings.input_size,
        spinning=False,
        providers=providers_for(settings.device),
    )


def _parse_target(target: str | int | None) -> str | int | None:
    if isinstance(target, str) and target.strip().lstrip("-").isdigit():
        return int(target)
    return target


def _drawing_kwargs(snap: Settings) -> dict:
    return {
        "alpha": snap.alpha,
        "colormap": snap.colormap,
        "mode": snap.mode,
        "norm": snap.norm,
        "threshold": snap.threshold,
    }


def check_maps_path(path: str | os.PathLike) -> None:
    """Check up front that the heatmaps can be saved at `path` (an .npz file in an existing,
    writable folder), so a long run never ends in a failed save; LiveheatError if not.

    Examples:
        >>> check_maps_path("maps.npz")
        >>> check_maps_path("maps.txt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        liveheat.errors.LiveheatError: cannot write maps 'maps.txt': expected an .npz file ...
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        raise LiveheatError(
            f"cannot write maps {p!r}: it is a folder; give a file name such as "
            f"{os.path.join(p, 'maps.npz')!r}"
        )
    if os.path.splitext(p)[1].lower() != ".npz":
        raise LiveheatError(f"cannot write maps {p!r}: expected an .npz file name (e.g. maps.npz)")
    folder = os.path.dirname(os.path.abspath(p))
    if not os.path.isdir(folder):
        raise LiveheatError(
            f"cannot write maps {p!r}: folder {folder!r} does not exist; create it or choose "
            "another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (
        os.path.exists(p) and not os.access(p, os.W_OK)
    ):
        raise LiveheatError(f"cannot write maps {p!r}: permission denied; choose a writable path")


def preflight(
    settings: Settings, backbone: Any = None, *, frame_size: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Check every setting before a single frame is read or a file is created.

    Checks each field by its spec (`Settings.check`), then runs the drawing with the settings
    on a tiny blank frame and, given a backbone, one heatmap on a blank frame, so a method or
    target the model cannot serve fails here with the owning module's message. Returns the
    size (W, H) of the rendered image for a frame of `frame_size` (wider with `panels`).

    Args:
        settings: the `Settings` to check.
        backbone: a `Backbone` to try the method and target on; None: the drawing only.
        frame_size: the source's (W, H); None: a small blank frame.

    Returns:
        The (W, H) of the drawn image for a frame of `frame_size`.

    Raises:
        LiveheatError: a bad setting (a `SettingError`), a maps path that cannot be written,
            ``norm="fixed"`` without a good ``vmin < vmax``, or a method or target the model
            cannot serve.

    Examples:
        >>> from liveheat.settings import Settings
        >>> preflight(Settings(), frame_size=(640, 360))
        (640, 360)
        >>> preflight(Settings(panels=True, hud=False), frame_size=(640, 360))[1]
        360
        >>> preflight(Settings(norm="fixed"))
        Traceback (most recent call last):
        ...
        liveheat.settings.rules.SettingError: --norm fixed needs --vmin A --vmax B ...
    """
    from liveheat.draw.overlay import overlay
    from liveheat.draw.panels import panels

    settings.check()  # each field by its one rule (catches values assigned directly)

    if settings.dump_maps:
        check_maps_path(settings.dump_maps)

    w, h = frame_size or (64, 48)
    frame = np.zeros((h, w, 3), np.uint8)
    heat = np.linspace(0, 1, 49, dtype=np.float32).reshape(7, 7)
    kw = _drawing_kwargs(settings)
    check_fixed_scale(settings.norm, settings.vmin, settings.vmax)
    if settings.norm == "fixed":
        kw.update(vmin=settings.vmin, vmax=settings.vmax)
    if backbone is not None:
        from liveheat.model.heatmaps import heatmap

        feats = backbone(np.full((h, w, 3), 127, np.uint8))
        heat = heatmap(feats, method=settings.method, target=_parse_target(settings.target))
    try:
        image = (panels if settings.panels else overlay)(frame, heat, **kw)
    except ValueError as e:  # the drawing's own message: what was wrong, what is valid
        raise LiveheatError(str(e)) from None
    return int(image.shape[1]), int(image.shape[0])
