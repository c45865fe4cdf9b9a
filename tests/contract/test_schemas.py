"""The JSON Schemas in docs/ match the models (regenerate: python -m reman.schemas)."""

from __future__ import annotations

import pytest

from reman.schemas import expected_files
from tests.conftest import REPO


@pytest.mark.parametrize(
    "path,text", sorted(expected_files(REPO).items()), ids=lambda v: getattr(v, "name", "")
)
def test_schema_file_matches_model(path, text):
    assert path.exists(), f"{path} missing: run python -m reman.schemas"
    assert path.read_text() == text, f"{path} drifted from its model: run python -m reman.schemas"


def test_no_stray_schema_files():
    expected = set(expected_files(REPO))
    present = set((REPO / "docs/config").glob("*.schema.json")) | set(
        (REPO / "docs/mqtt").glob("*.schema.json")
    )
    assert present <= expected, f"stale schema files: {sorted(present - expected)}"
