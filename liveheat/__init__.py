"""liveheat: show what a CNN looks at, live — ONNX feature maps blended onto video frames.

Public API (stable): drawing `overlay`, `colorize`, `normalize`, `panels`; the model `Backbone`,
`Features`, `heatmap`, `TemporalSmoother`; frames `open_source`; outputs `VideoSink`, `Window`,
`StreamServer`; the pipeline `Annotator` (frame by frame), `annotate_video` (a whole video),
`annotate_batch` (folders of videos and images, locally or on Ray, resumable), `run_video`;
`Settings`, `LiveheatError`, and `bundled_clip()` (the demo clip's path).
Names load on first use, so `import liveheat` is cheap and changes nothing process-wide.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from liveheat.errors import LiveheatError

__version__ = "0.1.0"

_LAZY = {
    "overlay": "liveheat.draw.overlay",
    "colorize": "liveheat.draw.overlay",
    "normalize": "liveheat.draw.overlay",
    "panels": "liveheat.draw.panels",
    "Backbone": "liveheat.model.backbone",
    "Features": "liveheat.model.features",
    "heatmap": "liveheat.model.heatmaps",
    "TemporalSmoother": "liveheat.model.smoothing",
    "open_source": "liveheat.sources.source",
    "VideoSink": "liveheat.outputs.video",
    "Window": "liveheat.outputs.window",
    "StreamServer": "liveheat.outputs.stream.server",
    "Settings": "liveheat.settings.fields",
    "Annotator": "liveheat.pipeline.annotator",
    "Annotation": "liveheat.pipeline.annotator",
    "annotate_video": "liveheat.pipeline.video",
    "annotate_batch": "liveheat.pipeline.batch",
    "BatchReport": "liveheat.pipeline.batch",
    "run_video": "liveheat.pipeline.video",
    "bundled_clip": "liveheat._common.files",
}

__all__ = [
    "Annotation",
    "Annotator",
    "BatchReport",
    "annotate_batch",
    "annotate_video",
    "bundled_clip",
    "Backbone",
    "Features",
    "LiveheatError",
    "Settings",
    "StreamServer",
    "TemporalSmoother",
    "VideoSink",
    "Window",
    "__version__",
    "colorize",
    "heatmap",
    "normalize",
    "open_source",
    "overlay",
    "panels",
    "run_video",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from liveheat._common.files import bundled_clip
    from liveheat.draw.overlay import colorize, normalize, overlay
    from liveheat.draw.panels import panels
    from liveheat.model.backbone import Backbone
    from liveheat.model.features import Features
    from liveheat.model.heatmaps import heatmap
    from liveheat.model.smoothing import TemporalSmoother
    from liveheat.outputs.stream.server import StreamServer
    from liveheat.outputs.video import VideoSink
    from liveheat.outputs.window import Window
    from liveheat.pipeline.annotator import Annotation, Annotator
    from liveheat.pipeline.batch import BatchReport, annotate_batch
    from liveheat.pipeline.video import annotate_video, run_video
    from liveheat.settings.fields import Settings
    from liveheat.sources.source import open_source


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'liveheat' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(mod), name)
    except ImportError as e:  # OpenCV or numpy missing or broken (libGL.so.1 on a server)
        raise ImportError(f"liveheat.{name} needs OpenCV, numpy and onnxruntime: {e}") from e
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
