"""Write the JSON Schemas of the config files and MQTT payloads.

Regenerate with `python -m reman.schemas` (from the repository root); tests/test_schemas.py fails
when the files in docs/ drift from the models.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from edge.config.station import StationConfig
from edge.contract import messages as contract
from edge.decision.families import FamilyConfig
from gateway.config import GatewayConfig

CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "station": StationConfig,
    "gateway": GatewayConfig,
    "family": FamilyConfig,
}


def schema_text(model: type[BaseModel]) -> str:
    """A model's JSON Schema, as stored in docs/ (stable key order, trailing newline)."""
    return json.dumps(model.model_json_schema(by_alias=True), indent=2, sort_keys=True) + "\n"


def reference_text() -> str:
    """docs/config.md: every config key with its type, default and description."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models by `python -m reman.schemas`; do not edit by hand.",
        "Validate files with `reman check-config FILE...`. Secrets: write `${ENV_VAR}` or use the",
        "`*_file` key beside a secret.",
    ]
    for name, model in CONFIG_MODELS.items():
        lines += [
            "",
            f"## {name} file",
            "",
            (model.__doc__ or "").strip(),
            "",
            "| key | type | default | description |",
            "|---|---|---|---|",
        ]
        lines += _model_rows(model, "")
    return "\n".join(lines) + "\n"


def _model_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for key, field in model.model_fields.items():
        path = f"{prefix}{field.alias or key}"
        nested = _nested_model(field.annotation)
        default = "required" if field.is_required() else _default_text(field)
        type_name = nested.__name__ if nested else _type_text(field.annotation)
        rows.append(f"| `{path}` | {type_name} | {default} | {field.description or ''} |")
        if nested is not None:
            rows += _model_rows(nested, path + ".")
    return rows


def _nested_model(annotation) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _default_text(field) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        return "(section)" if isinstance(value, BaseModel) else f"`{json.dumps(value)}`"
    value = field.default
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    return f"`{json.dumps(value, default=str)}`"


def _type_text(annotation) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        text = " | ".join(json.dumps(v) for v in typing.get_args(annotation))
    else:
        text = getattr(annotation, "__name__", None) or str(annotation)
    text = text.replace("typing.", "").replace("pydantic.types.", "")
    return text.replace("|", "\\|")


def expected_files(root: Path) -> dict[Path, str]:
    """Every generated file with the text it must have."""
    files = {
        root / "docs/config" / f"{name}.schema.json": schema_text(m)
        for name, m in CONFIG_MODELS.items()
    }
    files[root / "docs/config.md"] = reference_text()
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


def _cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m reman.schemas",
        description="Write the config and MQTT JSON Schemas and docs/config.md from the models.",
    )
    parser.add_argument(
        "root", nargs="?", type=Path, default=Path("."), help="repository root (default: .)"
    )
    main(parser.parse_args(argv).root)


if __name__ == "__main__":
    _cli(sys.argv[1:])
