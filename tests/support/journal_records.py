"""Inspection records and outbox messages for journal tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge.contract import (
    Credit,
    DecisionInfo,
    DefectResult,
    Disposition,
    InspectionRecord,
    Measurement,
    ModelInfo,
    Reason,
    RulesInfo,
    Topics,
)
from edge.contract.timefmt import utc_now
from edge.ids import new_id
from edge.journal.outbox import OutboxMessage

STATION = "pump-line-1"


def make_record(
    seq: int,
    core_id: str = "HGP-0001",
    code: Disposition = Disposition.REUSE,
    family: str | None = "hydraulic-gear-pump",
    ts: str | None = None,
    defects: dict | None = None,
    measurements: dict | None = None,
    **extra,
) -> InspectionRecord:
    """A plausible record of a gear pump inspection."""
    defects = (
        defects
        if defects is not None
        else {
            "corrosion": {"area_pct": 0.1, "grade": 1, "confidence": 0.9, "scale": "iso4628-3"},
            "wear": {"area_pct": 0.05, "grade": 0, "confidence": 0.95},
        }
    )
    measurements = (
        measurements
        if measurements is not None
        else {
            "leak_rate_ml_min": {
                "value": 3.2,
                "unit": "ml/min",
                "status": "Good",
                "source_ts": utc_now(),
            },
            "flow_l_min": {
                "value": 24.0,
                "unit": "l/min",
                "status": "Good",
                "source_ts": utc_now(),
            },
        }
    )
    credit = Credit.FULL if code in (Disposition.REUSE, Disposition.REMANUFACTURE) else Credit.NONE
    return InspectionRecord(
        id=new_id(),
        seq=seq,
        ts=ts or utc_now(),
        station=STATION,
        core_id=core_id,
        core_id_source="trigger",
        family=family,
        part_number=extra.pop("part_number", None),
        defects={k: DefectResult(**v) for k, v in defects.items()},
        measurements={k: Measurement(**v) for k, v in measurements.items()},
        decision=DecisionInfo(
            code=code,
            label=code.name,
            credit=credit,
            reasons=[Reason(code="in_spec", text="all in spec")],
        ),
        model=ModelInfo(name="reman-seg", version="1.0.0", sha256="ab" * 32),
        rules=RulesInfo(version="0123456789ab", sha256="0123456789ab" + "0" * 52),
        timings_ms={"grade": 8.0},
        **extra,
    )


def messages_for(record: InspectionRecord) -> list[OutboxMessage]:
    """The inspection and result messages the node publishes for a record."""
    topics = Topics(record.station)
    result = (
        f'{{"seq":{record.seq},"core":"{record.core_id}","code":{int(record.effective_code())},'
        f'"credit":{int(record.effective_credit())},"err":0}}'
    )
    return [
        OutboxMessage("inspection", topics.inspection, record.to_json().encode(), msg_id=record.id),
        OutboxMessage("result", topics.result, result.encode(), retain=True, msg_id=record.id),
    ]


def installed_config(folder: Path, journal: Path, station: str = STATION) -> Path:
    """config/station.example.yaml as installed, in `folder`, for `station` and its `journal`."""
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "config/families", folder / "families", dirs_exist_ok=True)
    text = (repo / "config/station.example.yaml").read_text()
    text = text.replace("/var/lib/reman/journal.db", str(journal))
    text = text.replace("/var/lib/reman/", f"{folder}/").replace("pump-line-1", station)
    (folder / "station.yaml").write_text(text)
    return folder / "station.yaml"
