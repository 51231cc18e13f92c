"""Drawing: numpy and OpenCV only. A map is normalised, coloured and blended onto a frame.

`overlay`, `colorize`, `normalize` (the kernel), `panels` and `colorbar`, and the HUD text.
"""

from liveheat.draw.overlay import COLORMAPS, colorize, normalize, overlay, resolve_colormap
from liveheat.draw.panels import colorbar, panels

__all__ = [
    "COLORMAPS",
    "colorbar",
    "colorize",
    "normalize",
    "overlay",
    "panels",
    "resolve_colormap",
]
