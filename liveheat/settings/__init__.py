"""Settings: one dataclass with one spec per field, one `validate`, config files, presets, flags.

A key press, a flag, a config file, the stream page and the API all change the same `Settings`,
and each field is checked by the same rule with the same message.
"""

from liveheat.settings.config import build_settings, load_config, preset_values
from liveheat.settings.fields import (
    LIVE_FIELDS,
    METHODS,
    MODES,
    NORMS,
    SPECS,
    SettingError,
    Settings,
    Spec,
    validate,
)

__all__ = [
    "LIVE_FIELDS",
    "METHODS",
    "MODES",
    "NORMS",
    "SPECS",
    "SettingError",
    "Settings",
    "Spec",
    "build_settings",
    "load_config",
    "preset_values",
    "validate",
]
