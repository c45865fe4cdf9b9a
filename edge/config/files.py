"""Reading a station's config file: validated once at start-up, relative paths made absolute."""

from __future__ import annotations

from pathlib import Path

from edge.config.station import StationConfig
from edge.contract.configfile import load_model


def load_station(path: Path) -> StationConfig:
    """Load and validate a station config; relative paths resolve against its folder.

    Raise ConfigError listing every problem as FILE:LINE: KEY: message.
    """
    path = Path(path)
    return load_model(path, StationConfig).resolve_paths(path.parent)
