"""Settings: one dataclass, one check per field, config files and presets.

A key press, a flag, a config file, the stream page and the API all change the same `Settings`.
"""

from liveheat.settings.config import build_settings, load_config, preset_values
from liveheat.settings.fields import MODES, NORMS, Settings

__all__ = ["MODES", "NORMS", "Settings", "build_settings", "load_config", "preset_values"]
