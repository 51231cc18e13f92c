"""A whole video from Python: open the source, build the outputs the settings ask for, run.

`outputs_from_settings` is the one place that turns settings into outputs; the command line
uses it too, so `annotate_video(src, "o.mp4")` and `liveheat run src -o o.mp4` write the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterable
from typing import Any

from liveheat.outputs.base import Output
from liveheat.outputs.keys import Controls
from liveheat.outputs.maps import MapsFile
from liveheat.outputs.stream.server import server_from_settings
from liveheat.outputs.video import VideoSink
from liveheat.outputs.window import Window
from liveheat.pipeline.preflight import make_backbone, preflight
from liveheat.pipeline.runner import Runner
from liveheat.pipeline.stats import RunStats
from liveheat.settings.fields import Settings, parse_duration
from liveheat.sources.base import AudioInfo
from liveheat.sources.source import Source, open_source


def outputs_from_settings(
    settings: Settings,
    stack: contextlib.ExitStack,
    *,
    size: tuple[int, int],
    fps: float | None,
    live: bool,
    show: bool = False,
    source: Any = None,
) -> list[Output]:
    """The outputs `settings` ask for, opened and registered on `stack` (closed with it).

    Args:
        settings: `serve` starts the stream server, `output` a video file, `dump_maps` the
            maps file; `show` (the argument, not the setting: the caller checked the display)
            a window.
        stack: where each output's `close()` is registered.
        size: the (W, H) of the drawn frames (wider with panels).
        fps: the source's frame rate (None: 25).
        live: a live source: the video file keeps wall-clock timing.
        show: open a window.
        source: the `Source` the frames come from: its sound goes into the video file
            (`settings.audio`), recorded sources only.

    Returns:
        The outputs in the order the runner writes them: server, file, maps, window.

    Raises:
        LiveheatError: an output cannot be opened (a bad path, a port in use).

    Examples:
        >>> import contextlib
        >>> with contextlib.ExitStack() as stack:  # nothing asked: no outputs
        ...     outputs_from_settings(Settings(), stack, size=(64, 48), fps=25.0, live=False)
        []
        >>> with contextlib.ExitStack() as stack:
        ...     outs = outputs_from_settings(Settings(serve="0"), stack, size=(64, 48),
        ...                                  fps=25.0, live=False)
        ...     [type(o).__name__ for o in outs]
        ['StreamServer']
    """
    outputs: list[Output] = []
    if settings.serve:
        outputs.append(stack.enter_context(server_from_settings(settings)))
    if settings.output:
        # live: frames placed by capture time, so the file plays at wall-clock speed
        sink = VideoSink(
            settings.output,
            fps=fps or 25.0,
            size=size,
            by_timestamp=live,
            codec=settings.codec,
            crf=settings.crf,
            encoder_preset=settings.encoder_preset,
            audio=audio_of(source, live=live) if settings.audio else None,
            segment=parse_duration(settings.segment) if settings.segment else None,
        )
        outputs.append(stack.enter_context(sink))
    if settings.dump_maps:
        outputs.append(stack.enter_context(MapsFile(settings.dump_maps)))
    if show:
        outputs.append(stack.enter_context(Window(settings, controls=Controls(settings))))
    return outputs


def source_options(settings: Settings) -> dict[str, Any]:
    """`open_source`'s keywords from the settings: the open timeout and what to ask a camera
    for (`--cam-size`, `--cam-fps`, `--cam-fourcc`, `--cam-backend`).

    Examples:
        >>> source_options(Settings(cam_size="640x480"))["camera"]["size"]
        (640, 480)
    """
    from liveheat.settings.fields import _wxh

    camera = {
        "size": _wxh(settings.cam_size) if settings.cam_size else None,
        "fps": settings.cam_fps,
        "fourcc": settings.cam_fourcc,
        "backend": settings.cam_backend,
    }
    return {"open_timeout": settings.open_timeout, "camera": camera}


def audio_of(source: Any, *, live: bool = False) -> AudioInfo | None:
    """The sound of `source` for a video file (`Source.audio`), or None: no sound, or a
    live source, whose frames are placed by wall-clock time (said in one line)."""
    audio = getattr(source, "audio", None)
    if audio is not None and live:
        print(
            "liveheat: the sound of a file read as a live source is not recorded (open it "
            "recorded to keep it)",
            file=sys.stderr,
        )
        return None
    return audio


def annotate_video(
    source: Any,
    output: str | os.PathLike | None = None,
    *,
    settings: Settings | None = None,
    show: bool = False,
    progress: bool | None = None,
    max_frames: int | None = None,
    outputs: Iterable[Output] = (),
    **overrides: Any,
) -> RunStats:
    """Annotate a video, camera or stream and write what the settings ask for.

    Args:
        source: a `Source`, or anything `open_source` takes (a path, a camera index, a URL);
            a source opened here is closed here.
        output: a video file to write (sets `settings.output`).
        settings: the `Settings` to follow (copied; default `Settings()`).
        show: open a window when a display exists.
        progress: a progress bar on stderr (default: when stderr is a terminal, recorded only).
        max_frames: stop after this many frames.
        outputs: more outputs of your own (anything that is an `Output`).
        **overrides: setting fields to change, e.g. `method="eigen", dump_maps="maps.npz"`.

    Returns:
        The run's `RunStats` (`stats.error` says why a source ended early).

    Raises:
        LiveheatError: a bad setting, source or output path (before any frame), or a file
            that could not be finalised.

    Examples:
        >>> import tempfile, pathlib, liveheat
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "clip.avi"
        >>> stats = liveheat.annotate_video(liveheat.bundled_clip(), out, max_frames=5,
        ...                                 input_size=128, hud=False)
        >>> stats.frames_out, out.is_file()
        (5, True)
    """
    settings = dataclasses.replace(settings) if settings is not None else Settings()
    if overrides:
        settings.update(**overrides)
    if output is not None:
        settings.update(output=os.fspath(output))
    return _annotate(source, settings, outputs, show=show, progress=progress, max_frames=max_frames)


def run_video(
    source: Any,
    settings: Settings | None = None,
    *,
    outputs: Iterable[Output] = (),
    backbone: Any = None,
    progress: bool | None = None,
    max_frames: int | None = None,
) -> RunStats:
    """Annotate a source into `outputs` and into whatever `settings` ask for (no window).

    The older name of `annotate_video`, kept for scripts that pass their own outputs: it
    writes `settings.output`, `settings.dump_maps` and serves `settings.serve` too.

    Args:
        source: a `Source`, or anything `open_source` takes (a path, a camera index, a URL);
            a source opened here is closed here.
        settings: the `Settings` to follow (used as given, not copied; default `Settings()`).
        outputs: outputs of your own to write to, besides those the settings ask for.
        backbone: a ready `Backbone`; default: made from the settings.
        progress, max_frames: as in `annotate_video`.

    Returns:
        The run's `RunStats`, as `annotate_video` does.

    Raises:
        LiveheatError: as `annotate_video` does.

    Examples:
        >>> import liveheat
        >>> stats = liveheat.run_video(liveheat.bundled_clip(), Settings(input_size=128),
        ...                            max_frames=3)
        >>> stats.frames_out
        3
    """
    settings = settings if settings is not None else Settings()
    return _annotate(
        source, settings, outputs, backbone=backbone, progress=progress, max_frames=max_frames
    )


def _annotate(
    source: Any,
    settings: Settings,
    outputs: Iterable[Output],
    *,
    backbone: Any = None,
    show: bool = False,
    progress: bool | None = None,
    max_frames: int | None = None,
) -> RunStats:
    with contextlib.ExitStack() as stack:
        src = (
            source
            if isinstance(source, Source)
            else stack.enter_context(open_source(source, **source_options(settings)))
        )
        bb = backbone if backbone is not None else make_backbone(settings, live=src.live)
        size = preflight(settings, bb, frame_size=tuple(src.size))
        outs = list(outputs)
        outs += outputs_from_settings(
            settings, stack, size=size, fps=src.fps, live=src.live, show=show, source=src
        )
        runner = Runner(
            src, settings, outputs=outs, backbone=bb, progress=progress, max_frames=max_frames
        )
        return runner.run()
