"""The Settings dataclass: every setting a flag, key, config file or page can change."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

METHODS_FIXED = ("cam", "eigen", "mean", "max", "norm")
#: the settings that shape the drawing and may change mid-run (a key, the stream page, the API);
#: the pipeline undoes a change among these that cannot be drawn
DRAWING_FIELDS = (
    "method",
    "target",
    "colormap",
    "alpha",
    "mode",
    "norm",
    "threshold",
    "panels",
    "hud",
    "smooth",
)
MODES = ("color", "gray", "mask", "transparent")
NORMS = ("minmax", "percentile", "sigmoid", "fixed", "none")


@dataclass
class Settings:
    """Everything that shapes a run. Field names equal the long command-line flags."""

    # model / heatmap
    model: str | None = None  # None: bundled fp32; "int8": bundled int8; else a path
    layer: str | None = None  # None: the model's default feature map
    method: str = "cam"  # cam | eigen | mean | max | norm | channel:K
    target: str | int | None = None  # class index or name; None = top-1
    input_size: int | None = None  # inference input side (multiple of 32); None: model default
    threads: int | None = None  # onnxruntime intra-op threads
    # drawing
    colormap: str = "jet"
    alpha: float = 0.5
    mode: str = "color"
    norm: str = "minmax"
    threshold: float | None = None
    panels: bool = False
    hud: bool = True
    # video
    smooth: float = 0.0  # EMA factor in [0, 1): 0 = off
    every: int = 1  # infer on every Nth frame
    max_fps: float | None = None
    paused: bool = False  # live: hold the current frame (space key, stream page)
    # outputs
    show: bool = True
    output: str | None = None
    dump_maps: str | None = None
    serve: str | None = None  # [HOST:]PORT
    token: str | None = None
    jpeg_quality: int = 80
    max_clients: int = 8
    preset: str | None = None
    # live changes from several threads go through this lock
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @classmethod
    def keys(cls) -> list[str]:
        """The public field names (the keys a config file may use)."""
        return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]

    def update(self, **changes) -> None:
        """Change fields atomically; an unknown name raises ValueError naming it."""
        unknown = [k for k in changes if k not in self.keys()]
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; valid: {', '.join(self.keys())}")
        with self._lock:
            for k, v in changes.items():
                setattr(self, k, v)

    def snapshot(self) -> Settings:
        """A consistent copy for one frame's work."""
        with self._lock:
            return dataclasses.replace(self)
