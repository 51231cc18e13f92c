"""Where frames come from: cameras, video files, image folders and stream URLs.

`open_source(spec)` gives a `Source`; iterating it yields `Frame` records (uint8 BGR images).
"""

from liveheat.sources.base import (
    BUNDLED_CLIP,
    IMAGE_EXTENSIONS,
    STREAM_SCHEMES,
    Frame,
    exact_fps,
)
from liveheat.sources.source import Source, open_source

__all__ = [
    "BUNDLED_CLIP",
    "IMAGE_EXTENSIONS",
    "STREAM_SCHEMES",
    "Frame",
    "Source",
    "exact_fps",
    "open_source",
]
