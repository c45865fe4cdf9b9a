"""Loading product families: the examples, matching, and every load error with file and line."""

from __future__ import annotations

import shutil

import pytest

from edge.contract.errors import ConfigError
from edge.decision.families import load_families
from tests.conftest import REPO

PUMP = """\
name: Pump
match:
  core_id_pattern: "^P-"
  part_numbers: [P-1, P-2]
  examples: [P-0001]
measurements:
  leak:
    unit: ml/min
    max: 5
grades:
  corrosion:
    recycle_at: 4
"""


def write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return folder / f"{name}.yaml"


def problems(folder):
    with pytest.raises(ConfigError) as info:
        load_families(folder)
    return [str(p) for p in info.value.problems]


def test_example_families_load_and_match():
    families = load_families(REPO / "config/families")
    assert sorted(f.id for f in families) == [
        "battery-module",
        "heat-pump-compressor",
        "hydraulic-gear-pump",
    ]
    assert families.match("HGP-000123").id == "hydraulic-gear-pump"
    assert families.match("X-1", part_number="HPC-SC-8K").id == "heat-pump-compressor"
    assert families.match("BAT-48-2026-0815").id == "battery-module"
    assert families.match("Z-1") is None
    assert families.match("Z-1", part_number="unknown") is None
    for family in families:
        for example in family.match.examples:
            assert families.match(example) is family


def test_rule_naming_unknown_measurement(tmp_path):
    path = write(
        tmp_path,
        "pump",
        PUMP + "rules:\n  - id: r1\n    text: t\n    outcome: RECYCLE\n"
        "    when:\n      - {defect: wear, grade_at: 3}\n      - {measurement: flow, above: 2}\n",
    )
    assert problems(tmp_path) == [
        f"{path}:19: rules.0.when.1.measurement: unknown measurement flow; known: leak"
    ]


def test_rule_naming_unknown_defect(tmp_path):
    path = write(
        tmp_path,
        "pump",
        PUMP + "rules:\n  - id: r1\n    text: t\n    outcome: RECYCLE\n"
        "    when:\n      - {defect: rust, grade_at: 3}\n",
    )
    assert problems(tmp_path) == [
        f"{path}:18: rules.0.when.0.defect: unknown defect type rust; "
        "known: wear, corrosion, coating_damage, anomaly"
    ]


def test_grade_limit_for_unknown_defect(tmp_path):
    path = write(tmp_path, "pump", PUMP.replace("  corrosion:", "  rust:"))
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}:10: grades: ") and "unknown defect type rust" in problem


def test_shared_part_number(tmp_path):
    write(tmp_path, "a-pump", PUMP)
    path = write(
        tmp_path,
        "b-pump",
        PUMP.replace('"^P-"', '"^Q-"')
        .replace("[P-0001]", "[Q-1]")
        .replace("[P-1, P-2]", "[Q-1, P-2]"),
    )
    assert problems(tmp_path) == [
        f"{path}:4: match.part_numbers.1: part number P-2 also belongs "
        f"to family a-pump ({tmp_path / 'a-pump.yaml'})"
    ]


def test_identical_patterns(tmp_path):
    write(tmp_path, "a-pump", PUMP)
    path = write(tmp_path, "b-pump", PUMP.replace("[P-1, P-2]", "[Q-1]"))
    assert problems(tmp_path) == [
        f"{path}:3: match.core_id_pattern: same core_id_pattern as "
        f"family a-pump ({tmp_path / 'a-pump.yaml'})"
    ]


def test_pattern_matching_another_family_example(tmp_path):
    write(tmp_path, "a-pump", PUMP)
    path = write(
        tmp_path,
        "b-pump",
        PUMP.replace('"^P-"', '"^P"').replace("[P-1, P-2]", "[Q-1]").replace("[P-0001]", "[P9]"),
    )
    assert problems(tmp_path) == [
        f"{path}:3: match.core_id_pattern: also matches P-0001, an example "
        f"core id of family a-pump ({tmp_path / 'a-pump.yaml'})"
    ]


def test_example_not_matching_own_pattern(tmp_path):
    path = write(tmp_path, "pump", PUMP.replace("[P-0001]", "[P-0001, X-1]"))
    assert problems(tmp_path) == [
        f"{path}:5: match.examples.1: example X-1 does not match core_id_pattern"
    ]


@pytest.mark.parametrize(
    "limits,line,key",
    [
        ("    min: 10\n    max: 5\n", 7, "measurements.leak"),
        ("    max: 5\n    recycle_above: 4\n", 7, "measurements.leak"),
        ("    min: 5\n    recycle_below: 6\n", 7, "measurements.leak"),
    ],
)
def test_impossible_measurement_limit(tmp_path, limits, line, key):
    path = write(tmp_path, "pump", PUMP.replace("    max: 5\n", limits))
    [problem] = problems(tmp_path)
    assert problem.startswith(f"{path}:{line}: {key}: ") and "impossible limit" in problem


def test_impossible_grade_and_rule_limits(tmp_path):
    path = write(
        tmp_path,
        "pump",
        PUMP.replace("    recycle_at: 4\n", "    recycle_at: 1\n    remanufacture_at: 3\n")
        + "rules:\n  - id: r1\n    text: t\n    outcome: RECYCLE\n    when:\n"
        "      - {measurement: leak, above: 9, below: 3}\n",
    )
    found = problems(tmp_path)
    assert len(found) == 2
    assert found[0].startswith(f"{path}:11: grades.corrosion: ") and "impossible limit" in found[0]
    assert found[1].startswith(f"{path}:19: rules.0.when.0: ") and "impossible limit" in found[1]


def test_every_problem_of_every_file_is_listed(tmp_path):
    a = write(tmp_path, "a-pump", PUMP.replace("name: Pump\n", "name: Pump\ncolour: red\n"))
    b = write(
        tmp_path,
        "b-pump",
        PUMP.replace('"^P-"', '"^Q-"')
        .replace("[P-0001]", "[Q-1]")
        .replace("[P-1, P-2]", "[Q-1]")
        .replace("max: 5", "max: five"),
    )
    found = problems(tmp_path)
    assert any(p.startswith(f"{a}:2: colour: unknown key") for p in found)
    assert any(p.startswith(f"{b}:9: measurements.leak.max: ") for p in found)


def test_copied_examples_and_missing_folder(tmp_path):
    shutil.copytree(REPO / "config/families", tmp_path / "families")
    assert len(load_families(tmp_path / "families")) == 3
    assert problems(tmp_path / "nowhere")[0].endswith("(folder): no such folder of families")
