"""Write the JSON Schemas of the config files and MQTT payloads.

Regenerate with `python -m edge.schemas` (from the repository root); tests/test_schemas.py fails
when the files in docs/ drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from edge import contract
from edge.config import StationConfig
from edge.families import FamilyConfig
from gateway.config import GatewayConfig

CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "station": StationConfig,
    "gateway": GatewayConfig,
    "family": FamilyConfig,
}


def schema_text(model: type[BaseModel]) -> str:
    """A model's JSON Schema, as stored in docs/ (stable key order, trailing newline)."""
    return json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"


def expected_files(root: Path) -> dict[Path, str]:
    """Every schema file with the text it must have."""
    files = {root / "docs/config" / f"{name}.schema.json": schema_text(m) for name, m in CONFIG_MODELS.items()}
    for kind, model in contract.PAYLOAD_MODELS.items():
        name = kind.replace("/", "-")
        files[root / "docs/mqtt" / f"{name}.schema.json"] = schema_text(model)
    return files


def main(root: Path = Path(".")) -> None:
    """Write every schema file under `root`."""
    for path, text in expected_files(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("."))
