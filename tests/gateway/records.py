"""Contract records for gateway tests, built the way a node would publish them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from edge.contract import Disposition, Impact, InspectionRecord
from edge.contract.timefmt import UTC

_seq = itertools.count(1)
BASE = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)

REASONS = {
    1: ("all_within_limits", "every grade and measurement within the REUSE limits"),
    2: ("wear_limit", "wear grade 3 exceeds the REUSE limit 2"),
    3: ("corrosion_limit", "corrosion Ri4 exceeds the REMANUFACTURE limit Ri3"),
    4: ("measurement_missing", "leak_rate_ml_min missing from the bench"),
}


def ts_at(minutes: float) -> str:
    """RFC 3339 time `minutes` after 08:00 UTC on the test day."""
    return (BASE + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def record(
    station: str = "st-1",
    core_id: str = "C1000",
    code: int = 1,
    minutes: float = 0,
    family: str | None = "hydraulic-gear-pump",
    impact: tuple[float, float] | None = (4.2, 11.5),
    rid: str | None = None,
    **extra,
) -> InspectionRecord:
    """A valid inspection record; impact=None gives a family without figures (unknown)."""
    seq = next(_seq)
    code_name, text = REASONS[code]
    data = {
        "schema": 1,
        "id": rid or f"01TEST{seq:020d}",
        "seq": seq,
        "ts": ts_at(minutes),
        "station": station,
        "core_id": core_id,
        "core_id_source": "trigger",
        "family": family,
        "part_number": "HGP-200",
        "defects": {
            "wear": {
                "area_pct": 1.2,
                "grade": min(code, 3),
                "confidence": 0.93,
                "scale": "iso4628-1",
            },
            "corrosion": {"area_pct": 0.3, "grade": 1, "confidence": 0.88, "scale": "iso4628-3"},
        },
        "measurements": {
            "leak_rate_ml_min": {
                "value": 2.5,
                "unit": "ml/min",
                "status": "Good",
                "source_ts": ts_at(minutes),
            }
        },
        "decision": {
            "code": code,
            "label": Disposition(code).name,
            "credit": 1,
            "reasons": [{"code": code_name, "text": text}],
        },
        "impact": (
            {"known": True, "material_kept_kg": impact[0], "co2e_avoided_kg": impact[1]}
            if impact
            else {"known": False}
        ),
        "model": {"name": "reman-grader", "version": "1.0.0", "sha256": "ab" * 32},
        "rules": {"version": "3f2a", "sha256": "cd" * 32},
        "timings_ms": {"grade": 8.1, "decide": 0.2},
    }
    data.update(extra)
    return InspectionRecord.model_validate(data)


def overridden(
    rec: InspectionRecord,
    code: int,
    user: str = "erin",
    reason: str = "seal seat scored",
    impact: tuple[float, float] | None = None,
) -> InspectionRecord:
    """The record as the node republishes it after an override."""
    data = rec.model_dump(by_alias=True, mode="json")
    data["override"] = {
        "code": code,
        "label": Disposition(code).name,
        "credit": 2,
        "reason": reason,
        "user": user,
        "ts": ts_at(60),
    }
    if impact is not None:
        data["impact"] = Impact(
            known=True, material_kept_kg=impact[0], co2e_avoided_kg=impact[1]
        ).model_dump()
    return InspectionRecord.model_validate(data)


def snapshot_jpeg(label: str = "C1000") -> bytes:
    """A JPEG like the node's snapshot: a grey part with defects outlined in red."""
    import cv2
    import numpy as np

    img = np.full((360, 480, 3), 32, np.uint8)
    cv2.circle(img, (240, 180), 140, (150, 150, 150), -1)
    cv2.circle(img, (240, 180), 50, (70, 70, 70), -1)
    cv2.ellipse(img, (180, 120), (30, 18), 20, 0, 360, (40, 40, 200), 3)
    cv2.rectangle(img, (280, 220), (330, 260), (40, 40, 200), 3)
    cv2.putText(img, label, (12, 340), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 2)
    ok, data = cv2.imencode(".jpg", img)
    assert ok
    return data.tobytes()
