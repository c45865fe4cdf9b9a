"""Every payload against its JSON Schema in docs/mqtt/; the result's size and ASCII rules."""

from __future__ import annotations

import json

import jsonschema
import pytest

from edge.contract import (
    RESULT_MAX_BYTES,
    ContractViolation,
    Credit,
    Disposition,
    InspectionRecord,
    Result,
    parse_command,
)
from edge.contract import messages as contract
from edge.events import Events
from reman.schemas import expected_files
from tests.conftest import REPO

SCHEMAS = REPO / "docs" / "mqtt"

RECORD = {
    "schema": 1,
    "id": "01jdx3v6m8k2q4r6t8w0y2a4c6",
    "seq": 123,
    "ts": "2026-11-28T15:52:56.123Z",
    "station": "st1",
    "core_id": "C1234",
    "core_id_source": "trigger",
    "family": "starter-a",
    "defects": {
        "corrosion": {"area_pct": 0.7, "grade": 2, "confidence": 0.93, "scale": "iso4628-3"}
    },
    "measurements": {
        "leak_rate_ml_min": {
            "value": 2.5,
            "unit": "ml/min",
            "status": "Good",
            "source_ts": "2026-11-28T15:52:55.900Z",
        }
    },
    "decision": {
        "code": 2,
        "label": "REMANUFACTURE",
        "credit": 1,
        "reasons": [{"code": "corrosion_limit", "text": "corrosion Ri2 above Ri1"}],
    },
    "model": {"name": "reman-seg", "version": "1.0.0", "sha256": "ab" * 32},
    "rules": {"version": "3f2a9c1d", "sha256": "cd" * 32},
    "timings_ms": {"grade": 8.1, "decide": 0.3},
}

EXAMPLES = {
    "inspection": [
        RECORD,
        {
            **RECORD,
            "revision": 2,
            "override": {
                "code": 3,
                "label": "RECYCLE",
                "credit": 3,
                "reason": "crack",
                "user": "alice",
                "ts": "2026-11-28T16:00:00.000Z",
            },
        },
        {
            **RECORD,
            "limits": {
                "grades": {"corrosion": {"remanufacture_at": 2, "recycle_at": 4}},
                "measurements": {
                    "leak_rate_ml_min": {
                        "unit": "ml/min",
                        "description": "Internal leakage at 200 bar",
                        "min": None,
                        "max": 5.0,
                        "out_of_spec": "REMANUFACTURE",
                        "recycle_below": None,
                        "recycle_above": 40.0,
                    }
                },
                "deciding": [
                    {
                        "rule": "grades.corrosion.remanufacture_at",
                        "defects": ["corrosion"],
                        "measurements": [],
                    }
                ],
            },
        },
    ],
    "result": [json.loads(Result(seq=123, core="C1234", code=2, credit=1).to_payload())],
    "stats": [
        {
            "ts": "2026-11-28T15:52:56.123Z",
            "station": "st1",
            "uptime_s": 12.5,
            "inspections": 3,
            "broker": {"state": "connected", "since": "2026-11-28T15:50:00.000Z"},
            "outbox_depth": 0,
            "outbox_oldest_age_s": None,
        }
    ],
    "event": [
        json.loads(
            Events("st1").warning("ack_timeout", "no ack", seq=7).model_dump_json(by_alias=True)
        )
    ],
    "trigger/set": [{}, {"core": "C1234"}],
    "ack/set": [{"seq": 123}],
    "override/set": [
        {
            "id": "01jdx3v6m8k2q4r6t8w0y2a4c6",
            "code": 3,
            "reason": "crack at flange",
            "user": "alice",
        },
        {"id": "i1", "code": 1, "credit": 2, "reason": "r", "user": "u", "command_id": "c1"},
    ],
    "label/set": [
        {"id": "i1", "view": 1, "good": True, "masks": {}, "user": "erin"},
        {
            "id": "i1",
            "view": 2,
            "good": False,
            "masks": {"corrosion": "iVBORw0KGgo="},
            "user": "erin",
            "command_id": "c2",
        },
    ],
    "frame/get": [
        {"id": "i1", "user": "erin"},
        {"id": "i1", "view": 2, "user": "e", "command_id": "f1"},
    ],
    "model/set": [
        {"action": "promote", "version": "2", "reason": "agrees on 200 cores", "user": "ada"},
        {"action": "rollback", "reason": "misses cracks", "user": "ada", "command_id": "m1"},
    ],
    "records/get": [
        {"from_seq": 1201, "to_seq": 1243, "user": "plant-gw-1"},
        {"from_seq": 7, "to_seq": 7, "user": "gateway", "command_id": "r1"},
    ],
    "frame": [
        {
            "id": "i1",
            "station": "st1",
            "ts": "2026-11-28T16:00:00.000Z",
            "width": 640,
            "height": 480,
            "image": "/9j/4AAQ",
            "masks": {"wear": "iVBORw0KGgo="},
            "model": "1",
            "command_id": "f1",
        },
        {
            "id": "i9",
            "station": "st1",
            "ts": "2026-11-28T16:00:00.000Z",
            "error": "no inspection i9",
        },
    ],
    "shadow": [
        {
            "id": "i1",
            "station": "st1",
            "ts": "2026-11-28T16:00:00.000Z",
            "candidate": "2",
            "active": "1",
            "defects": {"wear": {"area_pct": 1.5, "grade": 2, "confidence": 0.9}},
            "active_defects": {"wear": {"area_pct": 2.0, "grade": 3, "confidence": 0.8}},
            "code": 1,
            "active_code": 2,
        }
    ],
    "models": [
        {
            "station": "st1",
            "ts": "2026-11-28T16:00:00.000Z",
            "active": "1",
            "shadow": "2",
            "can_roll_back": False,
            "models": [
                {
                    "version": "1",
                    "name": "site",
                    "task": "segment",
                    "sha256": "ab",
                    "added": "2026-11-28T15:00:00.000Z",
                    "role": "active",
                },
                {
                    "version": "2",
                    "name": "site",
                    "task": "segment",
                    "sha256": "cd",
                    "added": "2026-11-28T15:30:00.000Z",
                    "role": "shadow",
                },
            ],
            "shadow_seen": 12,
            "shadow_skipped": 1,
        }
    ],
}


def schema(kind: str) -> dict:
    return json.loads((SCHEMAS / f"{kind.replace('/', '-')}.schema.json").read_text())


def test_every_payload_kind_has_an_example_and_a_current_schema_file():
    assert set(EXAMPLES) == set(contract.PAYLOAD_MODELS)
    for path, text in expected_files(REPO).items():
        if path.parent == SCHEMAS:
            assert path.read_text() == text, f"{path.name} drifted: run python -m reman.schemas"


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_examples_meet_the_schema_and_the_model(kind):
    for example in EXAMPLES[kind]:
        jsonschema.validate(example, schema(kind))
        contract.PAYLOAD_MODELS[kind].model_validate(example)


@pytest.mark.parametrize(
    "kind,bad",
    [
        ("result", {"seq": -1, "core": "C1", "code": 2, "credit": 1, "err": 0}),
        ("result", {"seq": 1, "core": "C1", "code": 9, "credit": 1, "err": 0}),
        ("result", {"seq": 1, "core": "C 1", "code": 2, "credit": 1, "err": 0}),
        ("ack/set", {"seq": "1"}),
        ("override/set", {"id": "i", "code": 0, "reason": "r", "user": "u"}),
        ("inspection", {**RECORD, "station": "Bad Station"}),
        ("inspection", {**RECORD, "revision": 0}),
        ("inspection", {**RECORD, "revision": "2"}),
        ("inspection", {**RECORD, "revision": 1.5}),
        ("trigger/set", {"core": "C1", "extra": 1}),
        ("records/get", {"from_seq": 0, "to_seq": 5, "user": "gw"}),
        ("records/get", {"from_seq": "1", "to_seq": 5, "user": "gw"}),
    ],
)
def test_schemas_refuse_what_the_models_refuse(kind, bad):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema(kind))
    with pytest.raises(ValueError):
        contract.PAYLOAD_MODELS[kind].model_validate(bad, strict=True)


def test_result_is_compact_ascii_within_the_limit_even_at_its_largest():
    largest = Result(
        seq=2**31 - 1, core="C" * 64, code=Disposition.REVIEW, credit=Credit.PARTIAL, err=2
    )
    data = largest.to_payload()
    assert len(data) <= RESULT_MAX_BYTES
    assert data.isascii() and b" " not in data and b"\n" not in data
    assert (
        Result(seq=5, core="C1", code=1, credit=1).to_payload()
        == b'{"seq":5,"core":"C1","code":1,"credit":1,"err":0}'
    )


@pytest.mark.parametrize("core", ["C" * 65, "Çore1", "core with space", ""])
def test_a_core_id_the_result_cannot_carry_is_an_error_at_the_source(core):
    with pytest.raises(ContractViolation, match="core"):
        Result.build(seq=1, core=core, code=2, credit=1)


def test_an_oversized_result_is_refused_not_truncated():
    forged = Result.model_construct(
        seq=1, core="C" * 300, code=Disposition.REUSE, credit=Credit.FULL, err=0
    )
    with pytest.raises(ContractViolation, match="bytes"):
        forged.to_payload()


def test_record_round_trips_through_its_payload():
    record = InspectionRecord.model_validate(RECORD)
    again = InspectionRecord.model_validate_json(record.to_json())
    assert again == record and json.loads(record.to_json())["schema"] == 1


def test_a_record_with_limits_round_trips_and_one_without_has_none():
    with_limits = InspectionRecord.model_validate(EXAMPLES["inspection"][-1])
    again = InspectionRecord.model_validate_json(with_limits.to_json())
    assert again == with_limits and again.limits is not None
    assert again.limits.measurements["leak_rate_ml_min"].max == 5.0
    assert again.limits.deciding[0].rule == "grades.corrosion.remanufacture_at"
    assert InspectionRecord.model_validate(RECORD).limits is None


@pytest.mark.parametrize("revision", ["2", True, 2.0, 0])
def test_a_revision_must_be_a_whole_number_from_one_even_when_parsed_leniently(revision):
    payload = json.dumps({**RECORD, "revision": revision}).encode()
    with pytest.raises(ContractViolation, match="revision"):
        contract.parse_json(InspectionRecord, payload, max_bytes=100_000)


def test_a_record_without_a_revision_is_revision_one():
    assert "revision" not in RECORD
    assert InspectionRecord.model_validate(RECORD).revision == 1


def test_parse_command_accepts_the_examples():
    for kind in ("trigger/set", "ack/set", "override/set"):
        for example in EXAMPLES[kind]:
            assert (
                parse_command(kind, json.dumps(example).encode()).model_dump(exclude_none=True)
                == example
            )
    assert parse_command("trigger/set", b"").core is None


OVERRIDE = {"id": "i1", "code": 3, "reason": "r", "user": "u"}


@pytest.mark.parametrize(
    "kind,payload,field",
    [
        ("override/set", {**OVERRIDE, "code": True}, "code"),
        ("override/set", {**OVERRIDE, "credit": True}, "credit"),
        ("override/set", {**OVERRIDE, "code": 3.0}, "code"),
        ("ack/set", {"seq": True}, "seq"),
        ("ack/set", {"seq": 12.0}, "seq"),
    ],
)
def test_a_boolean_or_decimal_is_not_an_integer_in_a_command(kind, payload, field):
    """JSON `true` would otherwise be applied as REUSE (1), and `"credit": true` as FULL."""
    with pytest.raises(ContractViolation, match=f"{field}: Input should be an integer"):
        parse_command(kind, json.dumps(payload).encode())
    if isinstance(payload[field], bool):  # JSON Schema counts 3.0 as an integer; we do not
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(payload, schema(kind))


@pytest.mark.parametrize(
    "path,value",
    [
        (("decision", "code"), True),
        (("decision", "credit"), False),
        (("seq",), True),
        (("seq",), 4.0),
        (("defects", "corrosion", "grade"), True),
    ],
)
def test_a_boolean_or_decimal_is_not_an_integer_in_a_record_parsed_leniently(path, value):
    """The gateway parses records leniently (for enum codes); integers stay integers there."""
    record = json.loads(json.dumps(RECORD))
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ContractViolation, match="Input should be an integer"):
        contract.parse_json(InspectionRecord, json.dumps(record).encode(), max_bytes=100_000)


@pytest.mark.parametrize("field", ["seq", "code", "credit", "err"])
def test_a_result_refuses_a_boolean(field):
    with pytest.raises(ContractViolation, match=field):
        Result.build(**{"seq": 1, "core": "C1", "code": 2, "credit": 1, "err": 0, field: True})


@pytest.mark.parametrize(
    "first,last,why",
    [(10, 9, "to_seq is before from_seq"), (1, 1001, "at most 1000 seqs per request")],
)
def test_a_records_request_asks_for_one_bounded_run(first, last, why):
    payload = json.dumps({"from_seq": first, "to_seq": last, "user": "gw"}).encode()
    with pytest.raises(ContractViolation, match=why):
        contract.parse_command("records/get", payload)

    longest = contract.parse_command("records/get", b'{"from_seq":1,"to_seq":1000,"user":"gw"}')
    assert (longest.from_seq, longest.to_seq) == (1, 1000)
