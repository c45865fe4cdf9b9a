"""The three kinds of config file (station, gateway, family): tell them apart and check one.

Here rather than in `edge` or `gateway` because it knows both: the `reman` command composes them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edge.config.files import load_station
from edge.contract.configfile import read_yaml
from edge.contract.errors import ConfigError, ConfigProblem
from edge.decision.families import load_families, load_family
from gateway.config import load_gateway

KINDS = ("station", "gateway", "family")

LOADERS: dict[str, Callable[[Path], object]] = {
    "station": load_station,
    "gateway": load_gateway,
    "family": load_family,
}


def detect_kind(path: Path) -> str:
    """station, gateway or family, from the file's top-level keys."""
    data = read_yaml(Path(path))
    keys = set(data) if isinstance(data, dict) else set()
    if keys & {"station_id", "camera", "bench", "journal", "families_dir"}:
        return "station"
    if "match" in keys or "measurements" in keys or "grades" in keys:
        return "family"
    if keys & {"http", "users", "store", "kiosk"}:
        return "gateway"
    message = "cannot tell the kind of file; give --kind station|gateway|family"
    raise ConfigError([ConfigProblem(str(path), 1, "(root)", message)])


def check_file(path: Path, kind: str | None = None) -> str:
    """Validate one file; return its kind. Raise ConfigError listing every problem."""
    kind = kind or detect_kind(path)
    LOADERS[kind](path)
    if kind == "family":
        _check_family_in_folder(Path(path))
    return kind


def _check_family_in_folder(path: Path) -> None:
    """A family is also checked against its folder: references, overlaps with its siblings."""
    try:
        load_families(path.parent)
    except ConfigError as exc:
        own = [p for p in exc.problems if Path(p.file) == path]
        if own:
            raise ConfigError(own) from exc
